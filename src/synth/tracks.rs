//! Tracked particles of a synthetic run (the `tracks:` section of a synth config): `n` velocities
//! drawn from the run's initial histogram and advanced with the stochastic differential equation
//! of the same known operator, recorded at every snapshot as `/tracks [T, n, d]`.
//!
//! - **Initial velocities.** A cell is drawn with the run's noise-free initial histogram as
//!   weights, then a uniform position inside that cell: the binned initial tracks are a
//!   multinomial sample of the noise-free `/f[0]`.
//! - **Dynamics.** ∂f/∂t = −∂_i(A_i f) + ½∂_i∂_j(D_ij f) is the law of dv = A dt + σ dW with
//!   σσᵀ = D, integrated by Euler–Maruyama with `substeps` equal steps per snapshot interval.
//!   A and D at a particle's velocity are the truth fields (physical units, v_th·ω_p and
//!   v_th²·ω_p) interpolated multilinearly between cell centres (bilinear in 2D, trilinear in
//!   3D), constant beyond the outermost centres; a time factor multiplies both at the start of
//!   each sub-step (A by c, σ by √c). σ is the Cholesky factor of D where D is positive definite;
//!   elsewhere (an indefinite or singular D, possible for a `model` truth) σ = Q√Λ₊ from the
//!   eigen-decomposition D = QΛQᵀ with the negative eigenvalues clamped to 0, so σσᵀ is the
//!   positive semi-definite part of D.
//! - **Boundary.** Particles are never reflected or removed: one that leaves the grid keeps its
//!   velocity (readers that bin tracks ignore it), and since the coefficients are constant
//!   outside the grid its excursion stays bounded.
//! - **Determinism.** Particles are processed in chunks of [`CHUNK`], each with its own ChaCha8
//!   stream keyed by (seed, run index, chunk); chunks run in parallel, so the tracks are bitwise
//!   the same for any thread count.

use crate::grid::VelocityGrid;
use crate::operator::{fp, Fields};
use ndarray::{Array3, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Particles per random stream (and per parallel task).
pub const CHUNK: usize = 4096;

fn default_substeps() -> usize {
    20
}

/// The `tracks:` section: `n` tracked particles, `substeps` Euler–Maruyama steps per snapshot
/// interval, random `seed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracksSpec {
    pub n: usize,
    #[serde(default = "default_substeps")]
    pub substeps: usize,
    #[serde(default)]
    pub seed: u64,
}

impl TracksSpec {
    /// The first invalid key (relative to the section) and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.n == 0 {
            return Err(("n", "must be ≥ 1".into()));
        }
        if self.substeps == 0 {
            return Err(("substeps", "must be ≥ 1".into()));
        }
        Ok(())
    }
}

/// Fields interpolated multilinearly between cell centres, constant beyond the outer centres.
pub struct Interpolator {
    dim: usize,
    n_fields: usize,
    first: [f64; 3],
    inv_dv: [f64; 3],
    extent: [usize; 3],
    stride: [usize; 3],
    /// Cell-major values: the `n_fields` values of a cell are adjacent.
    values: Vec<f64>,
}

impl Interpolator {
    /// `fields` of shape [`VelocityGrid::fields_shape`] on `grid`.
    pub fn new(grid: &VelocityGrid, fields: &Fields) -> Self {
        let (dim, n_fields, cells) = (grid.dim(), fields.shape()[0], grid.n_cells());
        let flat = fields.as_standard_layout();
        let flat = flat.as_slice().expect("standard layout");
        let mut values = vec![0.0; cells * n_fields];
        for (f, field) in flat.chunks_exact(cells).enumerate() {
            for (c, &v) in field.iter().enumerate() {
                values[c * n_fields + f] = v;
            }
        }
        let (mut first, mut inv_dv, mut extent, mut stride) = ([0.0; 3], [0.0; 3], [1; 3], [0; 3]);
        for a in 0..dim {
            first[a] = grid.centre(a, 0);
            inv_dv[a] = 1.0 / grid.dv(a);
            extent[a] = grid.extent(a);
            stride[a] = grid.stride(a);
        }
        Self { dim, n_fields, first, inv_dv, extent, stride, values }
    }

    /// The fields at velocity `v` (`dim` components) into `out[..n_fields]`.
    pub fn at(&self, v: &[f64], out: &mut [f64]) {
        let values = match self.dim {
            2 => self.at_dim::<2>(v),
            _ => self.at_dim::<3>(v),
        };
        out[..self.n_fields].copy_from_slice(&values[..self.n_fields]);
    }

    /// [`Self::at`] for a grid of `D` dimensions (`D == self.dim`); the fields in the first
    /// `n_fields` values.
    #[inline]
    fn at_dim<const D: usize>(&self, v: &[f64]) -> [f64; 9] {
        let (mut base, mut w, mut step) = (0, [0.0; D], [0; D]);
        for a in 0..D {
            let n = self.extent[a];
            if n < 2 {
                continue;
            }
            let x = ((v[a] - self.first[a]) * self.inv_dv[a]).clamp(0.0, (n - 1) as f64);
            let i = (x as usize).min(n - 2);
            w[a] = x - i as f64;
            base += i * self.stride[a];
            step[a] = self.stride[a];
        }
        let mut out = [0.0; 9];
        let nf = self.n_fields;
        for corner in 0..1usize << D {
            let (mut weight, mut cell) = (1.0, base);
            for a in 0..D {
                if corner >> a & 1 == 1 {
                    weight *= w[a];
                    cell += step[a];
                } else {
                    weight *= 1.0 - w[a];
                }
            }
            if weight == 0.0 {
                continue;
            }
            let row = &self.values[cell * nf..(cell + 1) * nf];
            for (o, &r) in out.iter_mut().zip(row) {
                *o += weight * r;
            }
        }
        out
    }
}

/// A d×d matrix (d ≤ 3) in the top-left block.
pub type Mat3 = [[f64; 3]; 3];

/// Lower Cholesky factor of `d` (`dim` × `dim`), if `d` is positive definite.
#[inline]
fn cholesky(dim: usize, d: &Mat3) -> Option<Mat3> {
    let mut l = [[0.0; 3]; 3];
    for j in 0..dim {
        let pivot = d[j][j] - (0..j).map(|k| l[j][k] * l[j][k]).sum::<f64>();
        if pivot <= 0.0 || pivot.is_nan() {
            return None;
        }
        l[j][j] = pivot.sqrt();
        for i in j + 1..dim {
            l[i][j] = (d[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>()) / l[j][j];
        }
    }
    Some(l)
}

/// Eigenvalues and eigenvectors (columns) of the symmetric `a` (`dim` × `dim`) by cyclic Jacobi
/// rotations.
fn symmetric_eigen(dim: usize, a: &Mat3) -> ([f64; 3], Mat3) {
    let mut a = *a;
    let mut q = [[0.0; 3]; 3];
    for (i, row) in q.iter_mut().enumerate().take(dim) {
        row[i] = 1.0;
    }
    for _sweep in 0..64 {
        let off: f64 = (0..dim).flat_map(|p| (p + 1..dim).map(move |r| (p, r))).map(|(p, r)| a[p][r] * a[p][r]).sum();
        let diag: f64 = (0..dim).map(|p| a[p][p] * a[p][p]).sum();
        if off <= 1e-30 * diag || off == 0.0 {
            break;
        }
        for p in 0..dim {
            for r in p + 1..dim {
                if a[p][r] == 0.0 {
                    continue;
                }
                let theta = (a[r][r] - a[p][p]) / (2.0 * a[p][r]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..dim {
                    let (kp, kr) = (a[k][p], a[k][r]);
                    a[k][p] = c * kp - s * kr;
                    a[k][r] = s * kp + c * kr;
                    let (kp, kr) = (q[k][p], q[k][r]);
                    q[k][p] = c * kp - s * kr;
                    q[k][r] = s * kp + c * kr;
                }
                let (row_p, row_r) = (a[p], a[r]);
                for k in 0..dim {
                    a[p][k] = c * row_p[k] - s * row_r[k];
                    a[r][k] = s * row_p[k] + c * row_r[k];
                }
            }
        }
    }
    ([a[0][0], a[1][1], a[2][2]], q)
}

/// A noise factor σ with σσᵀ = D₊, the positive semi-definite part of the symmetric `d`: the
/// Cholesky factor where `d` is positive definite, else Q√max(Λ, 0) of its eigen-decomposition.
#[inline]
pub fn noise_factor(dim: usize, d: &Mat3) -> Mat3 {
    if let Some(l) = cholesky(dim, d) {
        return l;
    }
    let (values, q) = symmetric_eigen(dim, d);
    let mut sigma = [[0.0; 3]; 3];
    for (k, &lambda) in values.iter().enumerate().take(dim) {
        let root = lambda.max(0.0).sqrt();
        for i in 0..dim {
            sigma[i][k] = q[i][k] * root;
        }
    }
    sigma
}

/// The random stream of particle chunk `chunk` of run `run_index`.
fn chunk_rng(seed: u64, run_index: usize, chunk: usize) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(run_index as u64).to_le_bytes());
    key[16..24].copy_from_slice(&(chunk as u64).to_le_bytes());
    key[24..].copy_from_slice(b"tracks\0\0");
    ChaCha8Rng::from_seed(key)
}

/// One chunk's particles: its random stream and velocities (`dim` per particle).
struct Chunk {
    rng: ChaCha8Rng,
    v: Vec<f64>,
}

/// Advance every particle of `chunk` by `factors.len()` Euler–Maruyama steps of length `h`, the
/// coefficients of step `s` multiplied by `factors[s]`, on a grid of `D` dimensions.
fn advance<const D: usize>(chunk: &mut Chunk, coeffs: &Interpolator, h: f64, factors: &[f64]) {
    let mut d = [[0.0; 3]; 3];
    // Sub-steps outside, particles inside: consecutive particles are independent, so their
    // dependency chains (interpolation → factor → update) overlap in the pipeline.
    for &factor in factors {
        let (drift, kick) = (factor * h, (factor * h).sqrt());
        for v in chunk.v.chunks_exact_mut(D) {
            let c = coeffs.at_dim::<D>(v);
            for i in 0..D {
                for j in 0..D {
                    d[i][j] = c[fp::d(D, i, j)];
                }
            }
            let sigma = noise_factor(D, &d);
            let mut xi = [0.0; D];
            for x in xi.iter_mut() {
                *x = chunk.rng.sample(StandardNormal);
            }
            let mut next = [0.0; D];
            for a in 0..D {
                let noise: f64 = (0..D).map(|b| sigma[a][b] * xi[b]).sum();
                next[a] = v[a] + drift * c[fp::a(a)] + kick * noise;
            }
            v.copy_from_slice(&next);
        }
    }
}

/// Tracks `[times.len(), spec.n, d]` of run `run_index`: particles drawn from the cell weights
/// `initial` (C order, ≥ 0) and advanced between the snapshot times `times` by the `fields`
/// (physical units, shape [`VelocityGrid::fields_shape`]). `factors`, for a time-dependent truth,
/// holds the time factor at the start of every sub-step, `spec.substeps` per interval.
pub fn sample_tracks(
    grid: &VelocityGrid,
    fields: &Fields,
    initial: &[f64],
    times: &[f64],
    factors: Option<&[f64]>,
    spec: &TracksSpec,
    run_index: usize,
) -> anyhow::Result<Array3<f64>> {
    spec.check().map_err(|(key, msg)| anyhow::anyhow!("tracks.{key}: {msg}"))?;
    let (dim, cells) = (grid.dim(), grid.n_cells());
    anyhow::ensure!(fields.dim() == grid.fields_shape(fp::n_fields(dim)), "tracks: fields of shape {:?} do not match the grid", fields.shape());
    anyhow::ensure!(initial.len() == cells, "tracks: {} initial weights for {cells} cells", initial.len());
    anyhow::ensure!(!times.is_empty(), "tracks: no snapshot times");
    let intervals = times.len() - 1;
    let substeps = spec.substeps;
    if let Some(f) = factors {
        anyhow::ensure!(f.len() == intervals * substeps, "tracks: {} time factors for {intervals} intervals of {substeps} sub-steps", f.len());
    }
    let size = times.len().checked_mul(spec.n).and_then(|x| x.checked_mul(dim)).filter(|&x| x <= isize::MAX as usize / 8);
    anyhow::ensure!(size.is_some(), "tracks.n: {} particles × {} snapshots is too large", spec.n, times.len());
    // Cumulative weights; draws past the last positive weight (rounding) take that cell.
    let mut cdf = Vec::with_capacity(cells);
    let mut total = 0.0;
    for &w in initial {
        anyhow::ensure!(w >= 0.0 && w.is_finite(), "tracks: initial weight {w} is not a finite non-negative number");
        total += w;
        cdf.push(total);
    }
    anyhow::ensure!(total > 0.0, "tracks: the initial distribution has no mass on the grid");
    let last = initial.iter().rposition(|&w| w > 0.0).unwrap_or(0);
    let coeffs = Interpolator::new(grid, fields);
    let n_chunks = spec.n.div_ceil(CHUNK);
    let mut chunks: Vec<Chunk> = (0..n_chunks)
        .into_par_iter()
        .map(|k| {
            let mut rng = chunk_rng(spec.seed, run_index, k);
            let len = CHUNK.min(spec.n - k * CHUNK);
            let mut v = Vec::with_capacity(len * dim);
            for _ in 0..len {
                let u = rng.gen::<f64>() * total;
                let cell = cdf.partition_point(|&c| c <= u).min(last);
                for a in 0..dim {
                    let i = cell / grid.stride(a) % grid.extent(a);
                    v.push(grid.range(a)[0] + (i as f64 + rng.gen::<f64>()) * grid.dv(a));
                }
            }
            Chunk { rng, v }
        })
        .collect();
    let mut out = Array3::zeros((times.len(), spec.n, dim));
    let record = |out: &mut Array3<f64>, k: usize, chunks: &[Chunk]| {
        let mut row = out.index_axis_mut(Axis(0), k);
        let row = row.as_slice_mut().expect("standard layout");
        row.par_chunks_mut(CHUNK * dim).zip(chunks).for_each(|(row, chunk)| row.copy_from_slice(&chunk.v));
    };
    record(&mut out, 0, &chunks);
    let ones = vec![1.0; substeps];
    for k in 0..intervals {
        let h = (times[k + 1] - times[k]) / substeps as f64;
        let factors = factors.map_or(&ones[..], |f| &f[k * substeps..(k + 1) * substeps]);
        chunks.par_iter_mut().for_each(|chunk| match dim {
            2 => advance::<2>(chunk, &coeffs, h, factors),
            _ => advance::<3>(chunk, &coeffs, h, factors),
        });
        record(&mut out, k + 1, &chunks);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(dim: usize, s: &Mat3) -> Mat3 {
        let mut p = [[0.0; 3]; 3];
        for i in 0..dim {
            for j in 0..dim {
                p[i][j] = (0..dim).map(|k| s[i][k] * s[j][k]).sum();
            }
        }
        p
    }

    #[test]
    fn noise_factor_reproduces_d_or_its_psd_part() {
        // Positive definite: the Cholesky factor, lower triangular.
        let d = [[2.0, 0.3, -0.1], [0.3, 1.0, 0.2], [-0.1, 0.2, 0.5]];
        let s = noise_factor(3, &d);
        assert_eq!((s[0][1], s[0][2], s[1][2]), (0.0, 0.0, 0.0));
        let p = product(3, &s);
        for i in 0..3 {
            for j in 0..3 {
                assert!((p[i][j] - d[i][j]).abs() < 1e-14, "{p:?}");
            }
        }
        // Indefinite: R diag(2, −1) Rᵀ → σσᵀ = R diag(2, 0) Rᵀ.
        let (c, s) = (0.6f64, 0.8f64);
        let d = [[2.0 * c * c - s * s, (2.0 + 1.0) * c * s, 0.0], [3.0 * c * s, 2.0 * s * s - c * c, 0.0], [0.0; 3]];
        let want = [[2.0 * c * c, 2.0 * c * s], [2.0 * c * s, 2.0 * s * s]];
        let p = product(2, &noise_factor(2, &d));
        for i in 0..2 {
            for j in 0..2 {
                assert!((p[i][j] - want[i][j]).abs() < 1e-12, "{p:?}");
            }
        }
        // Zero diffusion: no noise.
        assert_eq!(noise_factor(3, &[[0.0; 3]; 3]), [[0.0; 3]; 3]);
    }

    #[test]
    fn interpolation_is_multilinear_and_constant_outside() {
        let grid = VelocityGrid::cube(4, 2.0).unwrap();
        // Field value = 1 + 2 v_x − v_y + 0.5 v_z at every centre: linear, so reproduced inside.
        let mut fields = Fields::zeros(grid.fields_shape(fp::n_fields(3)));
        for i in 0..4 {
            for j in 0..4 {
                for k in 0..4 {
                    fields[[4, i, j * 4 + k]] = 1.0 + 2.0 * grid.centre(0, i) - grid.centre(1, j) + 0.5 * grid.centre(2, k);
                }
            }
        }
        let interp = Interpolator::new(&grid, &fields);
        let mut out = [0.0; 9];
        interp.at(&[0.3, -0.7, 1.1], &mut out);
        assert!((out[4] - (1.0 + 0.6 + 0.7 + 0.55)).abs() < 1e-12, "{}", out[4]);
        // Beyond the outer centres (±1.5): the value at the clamped position.
        interp.at(&[9.0, -0.7, -4.0], &mut out);
        assert!((out[4] - (1.0 + 3.0 + 0.7 - 0.75)).abs() < 1e-12, "{}", out[4]);
        assert_eq!(out[0], 0.0);
    }
}
