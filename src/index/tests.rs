//! Index tests: recall against exact search, groups, live inserts, persistence
//! and input validation.

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIM: usize = 384;

fn random_unit(rng: &mut StdRng) -> Vec<f32> {
    let v: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

/// A random unit vector near one of `centres`, the shape of sentence
/// embeddings (tight intent clusters). Uniform vectors on the 384-sphere have
/// no neighbourhood structure at all and are not what the index serves.
fn clustered_unit(rng: &mut StdRng, centres: &[Vec<f32>]) -> Vec<f32> {
    let centre = &centres[rng.gen_range(0..centres.len())];
    let v: Vec<f32> = centre.iter().zip(random_unit(rng)).map(|(c, n)| c + 0.7 * n).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Exact top-k ids among `candidates`.
fn exact(index: &ExemplarIndex, q: &[f32], k: usize, candidates: &[usize]) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = candidates.iter().map(|&id| (dot(index.vector(id), q), id)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(k).map(|(_, id)| id).collect()
}

fn recall(found: &[Hit], truth: &[usize]) -> usize {
    truth.iter().filter(|id| found.iter().any(|h| h.id == **id)).count()
}

#[test]
fn recall_at_10_matches_exact_search_with_and_without_groups() {
    let mut rng = StdRng::seed_from_u64(7);
    let n = 10_000;
    let n_groups = 8;
    let centres: Vec<Vec<f32>> = (0..150).map(|_| random_unit(&mut rng)).collect();
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| clustered_unit(&mut rng, &centres)).collect();
    let groups: Vec<String> = (0..n).map(|i| format!("scenario-{}", i % n_groups)).collect();
    let index = ExemplarIndex::build(vectors, groups, IndexParams::default()).unwrap();
    assert_eq!(index.len(), n);
    assert_eq!(index.groups().len(), n_groups);

    let all: Vec<usize> = (0..n).collect();
    let (mut found, mut total) = (0, 0);
    for _ in 0..100 {
        let q = clustered_unit(&mut rng, &centres);
        let hits = index.search(&q, 10, None).unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.windows(2).all(|w| w[0].similarity >= w[1].similarity));
        found += recall(&hits, &exact(&index, &q, 10, &all));
        total += 10;
    }
    let r_all = found as f64 / total as f64;

    let (mut found, mut total) = (0, 0);
    for i in 0..100 {
        let group = format!("scenario-{}", i % n_groups);
        let members: Vec<usize> = (0..n).filter(|&id| index.group(id) == group).collect();
        let q = clustered_unit(&mut rng, &centres);
        let hits = index.search(&q, 10, Some(&group)).unwrap();
        assert!(hits.iter().all(|h| index.group(h.id) == group));
        found += recall(&hits, &exact(&index, &q, 10, &members));
        total += 10;
    }
    let r_group = found as f64 / total as f64;
    println!("recall@10 all groups {r_all:.4}, one group {r_group:.4}");
    assert!(r_all >= 0.99, "recall@10 over all groups {r_all}");
    assert!(r_group >= 0.99, "recall@10 within a group {r_group}");
}

/// The worst case: uniform random unit vectors, where every point is about
/// as far as every other, need a wider search; the graph still finds the true
/// neighbours when given it.
#[test]
fn recall_at_10_on_uniform_random_vectors() {
    let mut rng = StdRng::seed_from_u64(11);
    let n = 10_000;
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| random_unit(&mut rng)).collect();
    let params = IndexParams { max_connections: 24, ef_construction: 200, ef_search: 512 };
    let index = ExemplarIndex::build(vectors, vec!["all".to_string(); n], params).unwrap();
    let all: Vec<usize> = (0..n).collect();
    let (mut found, mut total) = (0, 0);
    for _ in 0..100 {
        let q = random_unit(&mut rng);
        found += recall(&index.search(&q, 10, None).unwrap(), &exact(&index, &q, 10, &all));
        total += 10;
    }
    let r = found as f64 / total as f64;
    println!("recall@10 on uniform random vectors {r:.4}");
    assert!(r >= 0.99, "recall@10 on uniform random vectors {r}");
}

#[test]
fn similarity_is_cosine_and_an_exact_duplicate_ranks_first() {
    let mut rng = StdRng::seed_from_u64(1);
    let vectors: Vec<Vec<f32>> = (0..300).map(|_| random_unit(&mut rng)).collect();
    let groups = vec!["a".to_string(); 300];
    let index = ExemplarIndex::build(vectors.clone(), groups, IndexParams::default()).unwrap();
    for (id, v) in vectors.iter().enumerate().take(50) {
        // Scaling the query must not matter: search normalises it.
        let scaled: Vec<f32> = v.iter().map(|x| x * 3.0).collect();
        let hits = index.search(&scaled, 3, None).unwrap();
        assert_eq!(hits[0].id, id);
        assert!((hits[0].similarity - 1.0).abs() < 1e-5, "{}", hits[0].similarity);
        let expected = dot(&vectors[hits[1].id], v);
        assert!((hits[1].similarity - expected).abs() < 1e-5);
    }
}

#[test]
fn add_is_visible_to_search_and_creates_groups() {
    let mut rng = StdRng::seed_from_u64(2);
    let vectors: Vec<Vec<f32>> = (0..200).map(|_| random_unit(&mut rng)).collect();
    let groups: Vec<String> = (0..200).map(|i| if i % 2 == 0 { "a" } else { "b" }.to_string()).collect();
    let mut index = ExemplarIndex::build(vectors, groups, IndexParams::default()).unwrap();

    let new = random_unit(&mut rng);
    let id = index.add(new.clone(), "b".into()).unwrap();
    assert_eq!(id, 200);
    assert_eq!(index.search(&new, 1, None).unwrap()[0].id, id);
    assert_eq!(index.search(&new, 1, Some("b")).unwrap()[0].id, id);
    assert!(index.search(&new, 5, Some("a")).unwrap().iter().all(|h| h.id != id));

    let fresh = random_unit(&mut rng);
    let id = index.add(fresh.clone(), "c".into()).unwrap();
    assert_eq!(index.group(id), "c");
    assert_eq!(index.group_len("c"), 1);
    let hits = index.search(&fresh, 5, Some("c")).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, id);
    assert!((hits[0].similarity - 1.0).abs() < 1e-5);
    assert_eq!(index.len(), 202);
}

#[test]
fn empty_index_grows_through_add() {
    let mut index = ExemplarIndex::new(4, IndexParams::default()).unwrap();
    assert!(index.is_empty());
    assert!(index.search(&[1.0, 0.0, 0.0, 0.0], 3, None).unwrap().is_empty());
    index.add(vec![1.0, 0.0, 0.0, 0.0], "x".into()).unwrap();
    index.add(vec![0.0, 1.0, 0.0, 0.0], "x".into()).unwrap();
    let hits = index.search(&[0.6, 0.8, 0.0, 0.0], 5, Some("x")).unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].id, 1);
    assert!((hits[0].similarity - 0.8).abs() < 1e-5);
    assert!((hits[1].similarity - 0.6).abs() < 1e-5);
}

#[test]
fn unknown_group_and_zero_k_give_no_hits() {
    let index = ExemplarIndex::build(vec![vec![1.0, 0.0]], vec!["a".into()], IndexParams::default()).unwrap();
    assert!(index.search(&[1.0, 0.0], 5, Some("nope")).unwrap().is_empty());
    assert!(index.search(&[1.0, 0.0], 0, None).unwrap().is_empty());
    assert_eq!(index.group_len("nope"), 0);
}

#[test]
fn save_and_load_round_trip() {
    let mut rng = StdRng::seed_from_u64(3);
    let vectors: Vec<Vec<f32>> = (0..500).map(|_| random_unit(&mut rng)).collect();
    let groups: Vec<String> = (0..500).map(|i| format!("g{}", i % 3)).collect();
    let params = IndexParams { max_connections: 12, ef_construction: 64, ef_search: 40 };
    let mut index = ExemplarIndex::build(vectors, groups, params).unwrap();
    index.add(random_unit(&mut rng), "late".into()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    index.save(dir.path()).unwrap();
    let loaded = ExemplarIndex::load(dir.path()).unwrap();
    assert_eq!(loaded.len(), index.len());
    assert_eq!(loaded.dim(), index.dim());
    assert_eq!(loaded.params(), params);
    assert_eq!(loaded.groups(), index.groups());
    for id in 0..index.len() {
        assert_eq!(loaded.vector(id), index.vector(id));
        assert_eq!(loaded.group(id), index.group(id));
    }
    // The graphs are rebuilt, not copied, so compare against the data rather
    // than against the old graph: every stored vector finds itself.
    for id in (0..index.len()).step_by(25).chain([index.len() - 1]) {
        let group = loaded.group(id).to_string();
        assert_eq!(loaded.search(index.vector(id), 1, None).unwrap()[0].id, id);
        assert_eq!(loaded.search(index.vector(id), 1, Some(&group)).unwrap()[0].id, id);
    }
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = ExemplarIndex::load(dir.path()).unwrap_err();
    assert!(matches!(missing, IndexError::Io { .. }));
    assert!(missing.to_string().contains(INDEX_FILE), "{missing}");

    std::fs::write(dir.path().join(INDEX_FILE), b"not a safetensors file").unwrap();
    let corrupt = ExemplarIndex::load(dir.path()).unwrap_err();
    assert!(matches!(corrupt, IndexError::Corrupt { .. }));
    assert!(corrupt.to_string().contains(INDEX_FILE), "{corrupt}");

    // A valid file cut short must not load either.
    let index = ExemplarIndex::build(vec![vec![1.0, 2.0]; 3], vec!["a".into(); 3], IndexParams::default()).unwrap();
    index.save(dir.path()).unwrap();
    let path = dir.path().join(INDEX_FILE);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
    assert!(matches!(ExemplarIndex::load(dir.path()), Err(IndexError::Corrupt { .. })));
}

#[test]
fn invalid_inputs_are_errors() {
    let p = IndexParams::default();
    let e = ExemplarIndex::build(vec![vec![1.0, 0.0], vec![1.0]], vec!["a".into(), "a".into()], p).unwrap_err();
    assert!(matches!(e, IndexError::DimensionMismatch { expected: 2, got: 1, .. }), "{e}");
    let e = ExemplarIndex::build(vec![vec![f32::NAN, 0.0]], vec!["a".into()], p).unwrap_err();
    assert!(matches!(e, IndexError::NonFinite { .. }));
    let e = ExemplarIndex::build(vec![vec![0.0, 0.0]], vec!["a".into()], p).unwrap_err();
    assert!(matches!(e, IndexError::ZeroVector { .. }));
    let e = ExemplarIndex::build(vec![vec![1.0, 0.0]], vec![], p).unwrap_err();
    assert!(matches!(e, IndexError::LengthMismatch { .. }));
    assert!(ExemplarIndex::build(vec![], vec![], p).is_err());
    let bad = IndexParams { max_connections: 300, ..p };
    assert!(matches!(ExemplarIndex::new(2, bad), Err(IndexError::InvalidParams(_))));

    let mut index = ExemplarIndex::build(vec![vec![1.0, 0.0]], vec!["a".into()], p).unwrap();
    assert!(index.search(&[1.0], 1, None).is_err());
    assert!(index.search(&[f32::INFINITY, 0.0], 1, None).is_err());
    assert!(index.search(&[0.0, 0.0], 1, None).is_err());
    assert!(index.add(vec![1.0, 0.0, 0.0], "a".into()).is_err());
    assert_eq!(index.len(), 1, "a rejected add must not change the index");
}

#[test]
fn index_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ExemplarIndex>();
}

/// The same exemplars always give the same answers: a refit that changes
/// nothing must not move an evaluation figure.
#[test]
fn building_twice_gives_the_same_hits() {
    let mut rng = StdRng::seed_from_u64(11);
    let centres: Vec<Vec<f32>> = (0..40).map(|_| random_unit(&mut rng)).collect();
    let vectors: Vec<Vec<f32>> = (0..3000).map(|_| clustered_unit(&mut rng, &centres)).collect();
    let groups: Vec<String> = (0..vectors.len()).map(|i| format!("g{}", i % 5)).collect();
    let queries: Vec<Vec<f32>> = (0..200).map(|_| clustered_unit(&mut rng, &centres)).collect();
    let hits = || {
        let index = ExemplarIndex::build(vectors.clone(), groups.clone(), IndexParams::default()).unwrap();
        let ids = |group: Option<&str>| -> Vec<Vec<usize>> {
            queries.iter().map(|q| index.search(q, 10, group).unwrap().iter().map(|h| h.id).collect()).collect()
        };
        [ids(None), ids(Some("g3"))]
    };
    assert_eq!(hits(), hits());
}
