//! Nearest-rank percentiles, the definition every report of kefu uses.

/// The `p`-th percentile (0..=100) of ascending `sorted` by nearest rank:
/// the smallest value with at least `p`% of the values at or below it;
/// `None` for an empty slice.
pub fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(
            [50.0, 90.0, 99.0, 100.0, 0.0].map(|p| nearest_rank(&v, p)),
            [Some(5.0), Some(9.0), Some(10.0), Some(10.0), Some(1.0)]
        );
        assert_eq!(nearest_rank(&[], 50.0), None);
        assert_eq!(nearest_rank(&[7.0], 99.0), Some(7.0));
    }
}
