//! Vector arithmetic on plain `f32` rows (embeddings).

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt()
}

/// Cosine similarity; 0 when either vector is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let n = norm(a) * norm(b);
    if n > 0.0 {
        dot(a, b) / n
    } else {
        0.0
    }
}

/// `v` scaled to unit length; a zero or non-finite vector is returned as it is.
pub fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = norm(&v);
    if n > 0.0 && n.is_finite() {
        v.into_iter().map(|x| x / n).collect()
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_and_unit() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(unit(vec![3.0, 4.0]), vec![0.6, 0.8]);
        assert_eq!(unit(vec![0.0, 0.0]), vec![0.0, 0.0]);
    }
}
