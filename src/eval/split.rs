//! Deterministic stratified train / held-out split, for fitting thresholds and
//! gating retrained models on lines the model did not see.

use std::collections::BTreeMap;

/// Splits `items` into (train, held-out) index lists, stratified by `label`.
///
/// Each label holds out `round(n * holdout_fraction)` of its `n` items, but a
/// label with two or more items always keeps at least one on each side, so
/// every intent is both learnt and measured. A label with a single item stays
/// in train: an intent the model never saw cannot be measured fairly anyway.
/// A fraction of 0 (or NaN, or negative) holds nothing out.
///
/// The same `seed`, items and labels give the same split; each label is
/// shuffled from its own stream, so adding one intent leaves the split of the
/// others unchanged. Both lists are in ascending index order.
pub fn stratified_split<T>(
    items: &[T],
    label: impl Fn(&T) -> &str,
    holdout_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut by_label: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        by_label.entry(label(item)).or_default().push(i);
    }
    let fraction = if holdout_fraction.is_nan() {
        0.0
    } else {
        holdout_fraction.clamp(0.0, 1.0)
    };

    let mut train = Vec::with_capacity(items.len());
    let mut held_out = Vec::new();
    for (name, mut indices) in by_label {
        let n = indices.len();
        let k = if n < 2 || fraction == 0.0 {
            0
        } else {
            ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
        };
        let mut rng = SplitMix64(seed ^ fnv1a(name));
        shuffle(&mut indices, &mut rng);
        held_out.extend_from_slice(&indices[..k]);
        train.extend_from_slice(&indices[k..]);
    }
    train.sort_unstable();
    held_out.sort_unstable();
    (train, held_out)
}

/// SplitMix64: tiny, well-mixed, and fixed forever.
// NOTE: hand-rolled rather than `rand::StdRng`, whose algorithm may change
// between rand versions; a split must stay reproducible across upgrades so
// recorded held-out scores remain comparable.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Fisher-Yates; the modulo bias is negligible for label-sized slices.
fn shuffle(indices: &mut [usize], rng: &mut SplitMix64) {
    for i in (1..indices.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        indices.swap(i, j);
    }
}

/// FNV-1a, a stable hash (unlike `DefaultHasher`) to derive per-label seeds.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn labels() -> Vec<String> {
        let mut v = Vec::new();
        for (name, count) in [("a", 10), ("b", 2), ("c", 1), ("d", 5), ("e", 3)] {
            v.extend(std::iter::repeat_n(name.to_owned(), count));
        }
        v
    }

    fn per_label(items: &[String], idx: &[usize]) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for &i in idx {
            *m.entry(items[i].clone()).or_default() += 1;
        }
        m
    }

    #[test]
    fn deterministic_and_seed_sensitive() {
        let items = labels();
        let one = stratified_split(&items, |s| s, 0.3, 42);
        assert_eq!(one, stratified_split(&items, |s| s, 0.3, 42));
        let differs = (0..20).any(|seed| stratified_split(&items, |s| s, 0.3, seed) != one);
        assert!(differs);
    }

    #[test]
    fn partitions_all_indices_in_order() {
        let items = labels();
        let (train, held) = stratified_split(&items, |s| s, 0.3, 7);
        assert!(train.windows(2).all(|w| w[0] < w[1]));
        assert!(held.windows(2).all(|w| w[0] < w[1]));
        let mut all: Vec<usize> = train.iter().chain(&held).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..items.len()).collect::<Vec<_>>());
    }

    #[test]
    fn stratified_with_both_sides_covered() {
        let items = labels();
        for fraction in [0.01, 0.3, 0.99, 1.0, 5.0] {
            let (train, held) = stratified_split(&items, |s| s, fraction, 3);
            let (t, h) = (per_label(&items, &train), per_label(&items, &held));
            for name in ["a", "b", "d", "e"] {
                assert!(t[name] >= 1 && h[name] >= 1, "{name} at {fraction}");
            }
            assert_eq!((t["c"], h.get("c")), (1, None), "singleton stays in train");
        }
        let (train, held) = stratified_split(&items, |s| s, 0.3, 3);
        let h = per_label(&items, &held);
        assert_eq!((h["a"], h["d"], h["e"]), (3, 2, 1));
        assert_eq!(train.len() + held.len(), items.len());
    }

    #[test]
    fn zero_or_nan_fraction_holds_nothing_out() {
        let items = labels();
        for fraction in [0.0, -1.0, f64::NAN] {
            let (train, held) = stratified_split(&items, |s| s, fraction, 1);
            assert_eq!(train.len(), items.len());
            assert!(held.is_empty());
        }
    }

    #[test]
    fn adding_a_label_keeps_other_splits() {
        let items = labels();
        let (_, held) = stratified_split(&items, |s| s, 0.5, 9);
        let mut more = items.clone();
        more.extend(["z".to_owned(), "z".to_owned()]);
        let (_, held_more) = stratified_split(&more, |s| s, 0.5, 9);
        let old: Vec<usize> = held_more.into_iter().filter(|&i| i < items.len()).collect();
        assert_eq!(old, held);
    }
}
