//! One-dimensional difference operators as sparse row tables (interior stencil + edge rows), their
//! transposes, and the helpers both schemes share (grid scales, SIMD dispatch, warn-once flags).

use crate::grid::VelocityGrid;
use crate::operator::fp;
use std::sync::atomic::{AtomicBool, Ordering};

/// A banded `n×n` matrix given row by row. Rows `lo..hi` are the *standard* interior row
/// `w[0]·u[r−1] + w[1]·u[r] + w[2]·u[r+1]` (kernels hard-code that fast path); every row, standard
/// or not, is also listed in `rows` as `(column, weight)` pairs for the generic path.
#[derive(Clone, Debug, PartialEq)]
pub struct Table1D {
    pub rows: Vec<Vec<(usize, f64)>>,
    pub interior: [f64; 3],
    pub lo: usize,
    pub hi: usize,
}

impl Table1D {
    /// A table whose interior rows are `interior` and whose edge rows come from `edge(r)`
    /// (`Some(row)` for a non-standard row). Standard rows are the maximal run of rows that are
    /// not edges, so callers must list every edge row.
    fn build(n: usize, interior: [f64; 3], edge: impl Fn(usize) -> Option<Vec<(usize, f64)>>) -> Self {
        let mut rows = Vec::with_capacity(n);
        let mut standard = vec![false; n];
        for (r, is_std) in standard.iter_mut().enumerate() {
            match edge(r) {
                Some(row) => rows.push(row),
                None => {
                    *is_std = true;
                    rows.push((0..3).filter(|&k| interior[k] != 0.0).map(|k| (r + k - 1, interior[k])).collect());
                }
            }
        }
        let (lo, hi) = standard_run(&standard);
        Self { rows, interior, lo, hi }
    }

    /// The first difference `Δ1 u_r = u_{r+1} − u_{r−1}` (twice the reference code's δ1).
    pub fn first(n: usize, boundary: super::Boundary) -> Self {
        use super::Boundary::*;
        Self::build(n, [-1.0, 0.0, 1.0], |r| match (boundary, r) {
            (Guard, 0) => Some(vec![(1, 1.0)]),
            (Guard, r) if r == n - 1 => Some(vec![(n - 2, -1.0)]),
            (OneSided, 0) => Some(vec![(0, -3.0), (1, 4.0), (2, -1.0)]),
            (OneSided, r) if r == n - 1 => Some(vec![(n - 3, 1.0), (n - 2, -4.0), (n - 1, 3.0)]),
            _ => None,
        })
    }

    /// The second difference `Δ2 u_r = u_{r+1} − 2u_r + u_{r−1}` (the reference code's δ2).
    pub fn second(n: usize, boundary: super::Boundary) -> Self {
        use super::Boundary::*;
        Self::build(n, [1.0, -2.0, 1.0], |r| match (boundary, r) {
            (Guard, 0) => Some(vec![(0, -2.0), (1, 1.0)]),
            (Guard, r) if r == n - 1 => Some(vec![(n - 2, 1.0), (n - 1, -2.0)]),
            (OneSided, 0) => Some(vec![(0, 2.0), (1, -5.0), (2, 4.0), (3, -1.0)]),
            (OneSided, r) if r == n - 1 => Some(vec![(n - 4, -1.0), (n - 3, 4.0), (n - 2, -5.0), (n - 1, 2.0)]),
            _ => None,
        })
    }

    /// The transposed matrix, with its own standard run.
    pub fn transpose(&self) -> Self {
        let n = self.rows.len();
        let mut rows = vec![Vec::new(); n];
        for (r, row) in self.rows.iter().enumerate() {
            for &(c, w) in row {
                rows[c].push((r, w));
            }
        }
        let interior = [self.interior[2], self.interior[1], self.interior[0]];
        let standard: Vec<bool> = rows
            .iter()
            .enumerate()
            .map(|(r, row)| {
                let dense: Vec<(usize, f64)> =
                    (0..3).filter(|&k| interior[k] != 0.0 && r + k >= 1).map(|k| (r + k - 1, interior[k])).collect();
                r >= 1 && r + 1 < n && *row == dense
            })
            .collect();
        let (lo, hi) = standard_run(&standard);
        Self { rows, interior, lo, hi }
    }

    /// Whether row `r` is the standard interior row.
    #[inline]
    pub fn is_standard(&self, r: usize) -> bool {
        (self.lo..self.hi).contains(&r)
    }
}

/// The longest run of consecutive `true`s (empty run `0..0` if none).
fn standard_run(standard: &[bool]) -> (usize, usize) {
    let (mut best, mut start) = ((0, 0), None);
    for (r, &s) in standard.iter().chain(std::iter::once(&false)).enumerate() {
        match (s, start) {
            (true, None) => start = Some(r),
            (false, Some(s0)) => {
                if r - s0 > best.1 - best.0 {
                    best = (s0, r);
                }
                start = None;
            }
            _ => {}
        }
    }
    best
}

/// Physical → grid units, one factor per field in [`fp`] order for the grid's dimension:
/// `Â_i = A_i/Δv_i`, `D̂_ij = D_ij/(Δv_iΔv_j)` (in 2D `[1/Δv_x, 1/Δv_y, 1/Δv_x², 1/Δv_y²,
/// 1/(Δv_xΔv_y)]`).
pub fn grid_unit_scales(grid: &VelocityGrid) -> Vec<f64> {
    let d = grid.dim();
    let dv: Vec<f64> = (0..d).map(|a| grid.dv(a)).collect();
    let mut s = vec![0.0; fp::n_fields(d)];
    for i in 0..d {
        s[fp::a(i)] = 1.0 / dv[i];
        for j in i..d {
            s[fp::d(d, i, j)] = 1.0 / (dv[i] * dv[j]);
        }
    }
    s
}

/// The unordered pairs `(i, j)`, `i < j < n`, in the order of the off-diagonal fields.
pub fn pairs(n: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n).flat_map(move |i| (i + 1..n).map(move |j| (i, j)))
}

/// Smallest `n ≥ 1` with `(dt/n)·rate ≤ limit` (rate ≥ 0; non-finite rates give 1 and are left
/// to the caller's validation).
pub fn substeps_for(rate: f64, dt: f64, limit: f64) -> usize {
    let need = dt.abs() * rate / limit;
    if !need.is_finite() || need <= 1.0 {
        return 1;
    }
    let mut n = need.ceil() as usize;
    while (dt.abs() / n as f64) * rate > limit {
        n += 1;
    }
    n.max(1)
}

/// A flag that lets a warning fire once per owner instead of once per step.
#[derive(Debug, Default)]
pub struct WarnOnce(AtomicBool);

impl WarnOnce {
    /// True the first time only.
    pub fn first(&self) -> bool {
        !self.0.swap(true, Ordering::Relaxed)
    }
}

/// Run `body` compiled for AVX2 when the CPU has it (same results bit for bit: Rust never
/// contracts a·b + c into an FMA, so only the vector width changes), plainly otherwise.
#[macro_export]
#[doc(hidden)]
macro_rules! simd_dispatch {
    ($body:ident($($arg:expr),* $(,)?)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                unsafe { $body::avx2($($arg),*) }
            } else {
                $body::plain($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $body::plain($($arg),*)
        }
    }};
}

/// Define `mod $name { fn plain(..); unsafe fn avx2(..) }` around one `#[inline(always)]` kernel.
#[macro_export]
#[doc(hidden)]
macro_rules! simd_kernel {
    ($name:ident, $kernel:path, ($($arg:ident : $ty:ty),* $(,)?)) => {
        $crate::simd_kernel!($name, $kernel, ($($arg: $ty),*) -> ());
    };
    ($name:ident, $kernel:path, ($($arg:ident : $ty:ty),* $(,)?) -> $ret:ty) => {
        #[allow(clippy::too_many_arguments)]
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            pub fn plain($($arg: $ty),*) -> $ret {
                $kernel($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            pub unsafe fn avx2($($arg: $ty),*) -> $ret {
                $kernel($($arg),*)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::Boundary;

    fn dense(t: &Table1D) -> Vec<Vec<f64>> {
        let n = t.rows.len();
        let mut m = vec![vec![0.0; n]; n];
        for (r, row) in t.rows.iter().enumerate() {
            for &(c, w) in row {
                m[r][c] += w;
            }
        }
        m
    }

    #[test]
    fn tables_and_transposes_are_consistent() {
        for b in [Boundary::Guard, Boundary::OneSided] {
            for n in [4, 5, 9] {
                for t in [Table1D::first(n, b), Table1D::second(n, b)] {
                    let tt = t.transpose();
                    let (m, mt) = (dense(&t), dense(&tt));
                    for r in 0..n {
                        for c in 0..n {
                            assert_eq!(m[r][c], mt[c][r]);
                        }
                    }
                    for tab in [&t, &tt] {
                        for r in tab.lo..tab.hi {
                            let mut want = vec![0.0; n];
                            for k in 0..3 {
                                want[r + k - 1] += tab.interior[k];
                            }
                            assert_eq!(dense(tab)[r], want, "{b:?} n={n} row {r}");
                        }
                    }
                    assert!(t.hi > t.lo);
                }
            }
        }
        let t = Table1D::second(9, Boundary::OneSided).transpose();
        assert_eq!((t.lo, t.hi), (4, 5));
        assert_eq!(substeps_for(3.0, 1.0, 1.0), 3);
        assert_eq!(substeps_for(0.0, 1.0, 1.0), 1);
    }
}
