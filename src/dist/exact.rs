//! Exact, order-independent summation of f64 vectors (placeholder: plain sum).

/// Accumulates f64 vectors so that the total does not depend on the order or grouping of the
/// additions, nor on how they are split over ranks.
#[derive(Clone, Debug)]
pub struct ExactSum {
    acc: Vec<f64>,
}

impl ExactSum {
    pub fn new(len: usize) -> Self {
        Self { acc: vec![0.0; len] }
    }
    pub fn len(&self) -> usize {
        self.acc.len()
    }
    pub fn is_empty(&self) -> bool {
        self.acc.is_empty()
    }
    /// Add `x` (same length) exactly.
    pub fn add(&mut self, x: &[f64]) {
        for (a, b) in self.acc.iter_mut().zip(x) {
            *a += b;
        }
    }
    /// Add `x` exactly to the elements starting at `offset`.
    pub fn add_at(&mut self, offset: usize, x: &[f64]) {
        for (a, b) in self.acc[offset..offset + x.len()].iter_mut().zip(x) {
            *a += b;
        }
    }
    /// Reset to zero, keeping the length.
    pub fn clear(&mut self) {
        self.acc.iter_mut().for_each(|a| *a = 0.0);
    }
    /// The sum, rounded to f64 deterministically.
    pub fn to_f64(&self) -> Vec<f64> {
        self.acc.clone()
    }
}
