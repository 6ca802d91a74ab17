//! Exemplar-index search latency on 10k and 50k random unit vectors of
//! dimension 384 (the e5-small embedding size), over all groups and within
//! one of eight groups.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use kefu::index::{ExemplarIndex, IndexParams};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIM: usize = 384;
const GROUPS: usize = 8;

fn random_unit(rng: &mut StdRng) -> Vec<f32> {
    let v: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn search(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(42);
    let queries: Vec<Vec<f32>> = (0..64).map(|_| random_unit(&mut rng)).collect();
    let mut bench = c.benchmark_group("search_k10");
    for n in [10_000usize, 50_000] {
        let vectors: Vec<Vec<f32>> = (0..n).map(|_| random_unit(&mut rng)).collect();
        let groups: Vec<String> = (0..n).map(|i| format!("scenario-{}", i % GROUPS)).collect();
        let index = match ExemplarIndex::build(vectors, groups, IndexParams::default()) {
            Ok(index) => index,
            Err(e) => panic!("building the benchmark index: {e}"),
        };
        // Cycle through several queries so one lucky entry point does not
        // dominate the figure.
        let mut i = 0;
        bench.bench_with_input(BenchmarkId::new("all_groups", n), &index, |b, index| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                index.search(&queries[i], 10, None)
            })
        });
        bench.bench_with_input(BenchmarkId::new("one_group", n), &index, |b, index| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                index.search(&queries[i], 10, Some("scenario-3"))
            })
        });
    }
    bench.finish();
}

criterion_group! {
    name = benches;
    // Building the 50k index dominates the run; fewer samples keep it short.
    config = Criterion::default().sample_size(30);
    targets = search
}
criterion_main!(benches);
