//! Periodic FFT Poisson solve: electron density on the nodes → electric field on the nodes.
//!
//! `∇·E = ρ = 1 − n_e` (immobile neutralising ions, the k = 0 mode dropped), `E_k = −ik φ_k`,
//! `φ_k = ρ_k e^{−k²a²} / k²` with the exact continuous k (spectral gradient, so deposit and
//! interpolation with the same shape give no self-force and conserve momentum). The Nyquist
//! components of the gradient are zeroed so E stays real.

use num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};
use std::f64::consts::TAU;
use std::sync::Arc;

/// Plans, wavenumbers and scratch for one box; no allocation per solve.
pub struct PoissonSolver {
    nx: usize,
    ny: usize,
    nyh: usize,
    /// `k_x` for each x index, `k_y` for each of the `ny/2+1` y indices (1/λ_D).
    kx: Vec<f64>,
    ky: Vec<f64>,
    /// `e^{−k²a²}/k²`, 0 at k = 0, `[nx][nyh]`.
    green: Vec<f64>,
    row_forward: Arc<dyn RealToComplex<f64>>,
    row_inverse: Arc<dyn ComplexToReal<f64>>,
    col_forward: Arc<dyn Fft<f64>>,
    col_inverse: Arc<dyn Fft<f64>>,
    spec: Vec<Complex<f64>>,
    spec_x: Vec<Complex<f64>>,
    spec_y: Vec<Complex<f64>>,
    row_real: Vec<f64>,
    col: Vec<Complex<f64>>,
    col_x: Vec<Complex<f64>>,
    col_y: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl PoissonSolver {
    pub fn new(nx: usize, ny: usize, dx: f64, gaussian_width: f64) -> Self {
        let nyh = ny / 2 + 1;
        let wave = |i: usize, n: usize| {
            let m = if i <= n / 2 { i as f64 } else { i as f64 - n as f64 };
            TAU * m / (n as f64 * dx)
        };
        let kx: Vec<f64> = (0..nx).map(|i| wave(i, nx)).collect();
        let ky: Vec<f64> = (0..nyh).map(|j| wave(j, ny)).collect();
        let mut green = vec![0.0; nx * nyh];
        for i in 0..nx {
            for j in 0..nyh {
                let k2 = kx[i] * kx[i] + ky[j] * ky[j];
                if k2 > 0.0 {
                    green[i * nyh + j] = (-k2 * gaussian_width * gaussian_width).exp() / k2;
                }
            }
        }
        let mut real_planner = RealFftPlanner::<f64>::new();
        let row_forward = real_planner.plan_fft_forward(ny);
        let row_inverse = real_planner.plan_fft_inverse(ny);
        let mut planner = FftPlanner::<f64>::new();
        let col_forward = planner.plan_fft_forward(nx);
        let col_inverse = planner.plan_fft_inverse(nx);
        let scratch_len = [
            row_forward.get_scratch_len(),
            row_inverse.get_scratch_len(),
            col_forward.get_inplace_scratch_len(),
            col_inverse.get_inplace_scratch_len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        let zero = Complex::new(0.0, 0.0);
        Self {
            nx,
            ny,
            nyh,
            kx,
            ky,
            green,
            row_forward,
            row_inverse,
            col_forward,
            col_inverse,
            spec: vec![zero; nx * nyh],
            spec_x: vec![zero; nx * nyh],
            spec_y: vec![zero; nx * nyh],
            row_real: vec![0.0; ny],
            col: vec![zero; nx],
            col_x: vec![zero; nx],
            col_y: vec![zero; nx],
            scratch: vec![zero; scratch_len],
        }
    }

    /// Wavenumbers `(k_x[nx], k_y[ny/2+1])` of the half spectrum.
    pub fn wavenumbers(&self) -> (&[f64], &[f64]) {
        (&self.kx, &self.ky)
    }

    /// Forward 2D transform `Σ_j a_j e^{−ik·x_j}` of a real `[nx][ny]` array into the half
    /// spectrum `[nx][ny/2+1]` held in `self.spec`.
    fn forward(&mut self, a: &[f64]) {
        let (nx, ny, nyh) = (self.nx, self.ny, self.nyh);
        for i in 0..nx {
            self.row_real.copy_from_slice(&a[i * ny..(i + 1) * ny]);
            self.row_forward
                .process_with_scratch(&mut self.row_real, &mut self.spec[i * nyh..(i + 1) * nyh], &mut self.scratch)
                .expect("buffer lengths match the plan");
        }
        for j in 0..nyh {
            for i in 0..nx {
                self.col[i] = self.spec[i * nyh + j];
            }
            self.col_forward.process_with_scratch(&mut self.col, &mut self.scratch);
            for i in 0..nx {
                self.spec[i * nyh + j] = self.col[i];
            }
        }
    }

    /// Field `(E_x, E_y)` on the `[nx][ny]` nodes from the electron density `n_e` on the nodes.
    pub fn solve(&mut self, density: &[f64], ex: &mut [f64], ey: &mut [f64]) {
        let (nx, ny, nyh) = (self.nx, self.ny, self.nyh);
        self.forward(density);
        for j in 0..nyh {
            let ky = if ny % 2 == 0 && j == ny / 2 { 0.0 } else { self.ky[j] };
            for i in 0..nx {
                let kx = if nx % 2 == 0 && i == nx / 2 { 0.0 } else { self.kx[i] };
                // ρ_k = −n_k (k ≠ 0); E_k = −ik φ_k = −ik ρ_k G = ik n_k G.
                let n_k = self.spec[i * nyh + j] * self.green[i * nyh + j];
                let i_n = Complex::new(-n_k.im, n_k.re);
                self.col_x[i] = i_n * kx;
                self.col_y[i] = i_n * ky;
            }
            self.col_inverse.process_with_scratch(&mut self.col_x, &mut self.scratch);
            self.col_inverse.process_with_scratch(&mut self.col_y, &mut self.scratch);
            for i in 0..nx {
                self.spec_x[i * nyh + j] = self.col_x[i];
                self.spec_y[i * nyh + j] = self.col_y[i];
            }
        }
        let norm = 1.0 / (nx * ny) as f64;
        for (spec, out) in [(&mut self.spec_x, &mut *ex), (&mut self.spec_y, &mut *ey)] {
            for i in 0..nx {
                let row = &mut spec[i * nyh..(i + 1) * nyh];
                // Real inputs: these are real up to round-off.
                row[0].im = 0.0;
                if ny % 2 == 0 {
                    row[nyh - 1].im = 0.0;
                }
                self.row_inverse
                    .process_with_scratch(row, &mut out[i * ny..(i + 1) * ny], &mut self.scratch)
                    .expect("imaginary parts of the real bins were zeroed");
            }
            out.iter_mut().for_each(|v| *v *= norm);
        }
    }

    /// `|Ê_x(k)|² + |Ê_y(k)|²` on the half spectrum `[nx][ny/2+1]` with `Ê(k) = Σ_nodes E e^{−ik·x}`.
    pub fn power_spectrum(&mut self, ex: &[f64], ey: &[f64]) -> Vec<f64> {
        self.forward(ex);
        let mut power: Vec<f64> = self.spec.iter().map(|c| c.norm_sqr()).collect();
        self.forward(ey);
        power.iter_mut().zip(&self.spec).for_each(|(p, c)| *p += c.norm_sqr());
        power
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_mode_field() {
        // n_e = 1 − ε k cos(kx) ⇒ ρ = ε k cos(kx) ⇒ E_x = ε sin(kx), E_y = 0.
        let (nx, ny, dx) = (16, 8, 0.5);
        let k = TAU / (nx as f64 * dx);
        let eps = 0.01;
        let mut n = vec![0.0; nx * ny];
        for i in 0..nx {
            for j in 0..ny {
                n[i * ny + j] = 1.0 - eps * k * (k * i as f64 * dx).cos();
            }
        }
        let mut solver = PoissonSolver::new(nx, ny, dx, 0.0);
        let (mut ex, mut ey) = (vec![0.0; nx * ny], vec![0.0; nx * ny]);
        solver.solve(&n, &mut ex, &mut ey);
        for i in 0..nx {
            for j in 0..ny {
                let want = eps * (k * i as f64 * dx).sin();
                assert!((ex[i * ny + j] - want).abs() < 1e-14, "{i} {j}");
                assert!(ey[i * ny + j].abs() < 1e-14);
            }
        }
    }
}
