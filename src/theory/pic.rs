//! Kinetic theory of the PIC plasma itself: the Lenard–Balescu drag and diffusion of a particle in
//! the discretised plasma of `colop pic`, with the grid's aliasing, its Poisson solve and field
//! gradient, and the interpolation back to the particles (Langdon, J. Comput. Phys. 6, 247 (1970);
//! Okuda & Birdsall, Phys. Fluids 13, 2123 (1970); Birdsall & Langdon, *Plasma Physics via
//! Computer Simulation*, ch. 8 and 12; Hockney & Eastwood, *Computer Simulation Using Particles*,
//! ch. 7).
//!
//! # The scheme (src/pic)
//!
//! Charge is deposited on the nodes with the order-n B-spline W of the cell size Δx, whose
//! transform is S(k) = [sinc(k_xΔx/2) sinc(k_yΔx/2)]^(n+1) (spline part only here). Sampling on
//! the nodes folds wavenumbers: the node density at a wavenumber k of the Brillouin zone
//! |k_x|, |k_y| ≤ π/Δx is Σ_q S(k_q) ρ(k_q), k_q = k + q k_g, k_g = 2π/Δx, q ∈ ℤ². The field
//! solve is spectral: φ(k) = ρ(k) e^(−k²a²)/k² with the zone wavenumber k, so the operator is
//! K²(k) = k² e^(k²a²) (the Gaussian of width a is applied in the solve, at the zone k, not in
//! the shape), and E(k) = −iκ(k)φ(k) with κ(k) = k (the Nyquist components, a set of measure zero,
//! are zeroed). The same spline interpolates E back: a particle at x feels Σ_q S(k_q)E(k)e^(ik_q·x).
//!
//! # Coefficients (units v_th, ω_p, λ_D; N = nλ_D²)
//!
//! Write every wavenumber of the plane as k′ (a test-particle alias: k′ = k_p for one zone k and
//! p ∈ ℤ²), fold(k′) = k its zone wavenumber, κ = κ(fold k′), K² = K²(fold k′) and ω = k′·v.
//! Averaging over the test particle's position in the cell keeps only the diagonal alias terms
//! (p′ = p of the deposit and of the interpolation of the test particle); averaging over the
//! field particles' positions does the same for them. With the linear response of the aliased
//! plasma to the interpolated field (only its component along k_q drives a Maxwellian),
//!
//! ε(k′, ω) = 1 + (1/K²) Σ_q S²(k_q) (κ·k_q/k_q²) X(ω/|k_q|),   X(s) = 1 + ζZ(ζ), ζ = s/√2,
//!
//! (the PIC dielectric: a sum over aliases of the shape-weighted susceptibility), and
//!
//! D_ij = (1/2πN) ∫d²k′ S²(k′) κ_iκ_j/(K⁴|ε|²) Σ_q S²(k′_q) g(ω/|k′_q|)/|k′_q|,
//! F_i  = (1/4π²N) ∫d²k′ S²(k′) κ_i Im(1/ε)/K²,
//!
//! with the field-particle alias sum taken around k′ (k′_q = k′ + q k_g, which is a sum over
//! the same lattice), g the unit 1D Maxwellian and F the polarisation drag. The drag is again
//! A_i = ½∂_jD_ij + F_i. The sums are truncated at |q|_∞ ≤ M, with M grown until the
//! coefficients converge ([`converge_aliases`]).
//!
//! *Continuum limit.* With exact operators (fold = identity, κ = k′, K² = k′²e^(k′²a²)) and M = 0
//! this is term by term the continuum theory of [`super`] (its S² is the spline S² times
//! e^(−k²a²)); the tests check that the two code paths agree.
//!
//! *No thermal equilibrium.* In the continuum, Im ε carries the same Σ as D and F = −D·v/2: the
//! Maxwellian is stationary. Here Im ε weights alias q by (ω/|k_q|)(κ·k_q/k_q²) while D weights
//! it by κ·v/|k_q|: the two agree only for q = 0 inside the zone, so aliasing breaks the
//! fluctuation–dissipation balance, which is the grid heating of a momentum-conserving PIC code.
//! [`RadialPoint::stationarity_residual`](super::RadialPoint::stationarity_residual) measures it.
//!
//! *Quadrature.* As in [`super`], polar (κ′, φ) with φ ∈ [0, π] (k′ → −k′ symmetry), split in φ
//! where k̂′·u crosses the levels of the continuum theory and in κ′ at the continuum Cherenkov
//! resonance (with its geometric neighbours) and where the ray crosses a zone boundary
//! (κ′|cos φ| or κ′|sin φ| = (2j+1)π/Δx: κ and K² jump there). For |k̂′·u| > 7 the narrow
//! resonance sits at κ′ < 0.15, where aliases are negligible, and the continuum's analytic
//! Lorentzian is used.
//!
//! On coarse grids (Δx ≳ 3λ_D, linear shapes) the aliased Langmuir resonances (small zone k
//! driven at k′·v ≈ ±ω_p, damped only by the aliases) are too narrow and too many for this
//! integral: it is slow there and may report non-convergence. `colop theory --pic` uses the
//! *mode sums* instead ([`Scheme::box_tensor_at`]): ∫d²k′/(2π)² → (1/L²)Σ over the modes of the
//! periodic box and their aliases, exactly the modes the simulation has. They tend to the integral
//! as the box grows (checked where both work, to 1e-3 and better) and need no quadrature; on a
//! coarse grid they depend on the box at the 0.5% level (which modes fall near a resonance).
//!
//! *Time step.* The leap-frog adds frequency aliases ω − 2πm/Δt and a factor (ωΔt/2)²/sin²(ωΔt/2)
//! to the orbit response (Langdon 1970). They are not included; [`time_step_effects`] gives their
//! size for a Δt: at the default ω_pΔt = 0.1 the Langmuir frequency shifts by (ω_pΔt)²/24 ≈ 4e-4
//! and the first time alias needs |k| ≳ 2π/((|v|+4)Δt), where the shape has no weight left.

use super::quadrature::{integrate, Tolerance};
use super::{angle_breakpoints, kappa_integrals, maxwellian_1d, resonance, susceptibility_x, Accuracy, Plasma, RadialPoint, Tensor, TheoryError, S_ANALYTIC};
use num_complex::Complex64;
use rayon::prelude::*;
use std::f64::consts::PI;

/// Which field operators the theory uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operators {
    /// The PIC code's: zone-folded gradient κ(k′) = fold(k′) and Poisson K²(fold k′).
    Grid,
    /// Exact continuum operators κ = k′, K² = k′²e^(k′²a²) (the continuum limit).
    Exact,
}

/// A discretised plasma: the continuum description plus the grid's operators and alias sum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scheme {
    /// n λ_D², B-spline order, Δx and Gaussian width (the Gaussian acts in the field solve).
    pub plasma: Plasma,
    pub operators: Operators,
    /// Alias sums over |q|_∞ ≤ `aliases` (0: none).
    pub aliases: u32,
}

/// The alias sums of [`Scheme`] at one k′: zone k and k², the solve's Gaussian G(k), χ =
/// Σ_q S²(k_q)(κ·k_q/k_q²)X, the field-particle source Σ_q S²(k_q)g/|k_q| and S²(k′).
struct Response {
    k: [f64; 2],
    k2: f64,
    gauss: f64,
    chi: Complex64,
    source: f64,
    st2: f64,
}

/// Samples of Re(K²ε) per continuous piece of a ray, to bracket the aliased Langmuir resonances.
const ROOT_SAMPLES: usize = 96;

/// Largest alias order [`converge_aliases`] tries.
pub const MAX_ALIASES: u32 = 24;

impl Scheme {
    /// The PIC code's scheme with alias sums to order `aliases`.
    pub fn pic(plasma: Plasma, aliases: u32) -> Self {
        Self { plasma, operators: Operators::Grid, aliases }
    }

    /// The continuum limit: exact operators, no aliases.
    pub fn continuum(plasma: Plasma) -> Self {
        Self { plasma, operators: Operators::Exact, aliases: 0 }
    }

    /// This scheme with alias (and, for box sums, test-alias) order `m`.
    pub fn with_aliases(self, m: u32) -> Self {
        Self { aliases: m, ..self }
    }

    fn kg(&self) -> f64 {
        2.0 * PI / self.plasma.dx
    }

    /// Spline-only form factor S(k) of the shape.
    fn spline(&self, kx: f64, ky: f64) -> f64 {
        crate::pic::shape::form_factor(self.plasma.shape_order as usize, self.plasma.dx, 0.0, kx, ky)
    }

    /// The zone wavenumber of k′ (identity for exact operators).
    fn fold(&self, k: [f64; 2]) -> [f64; 2] {
        match self.operators {
            Operators::Exact => k,
            Operators::Grid => {
                let kg = self.kg();
                k.map(|c| c - kg * (c / kg).round())
            }
        }
    }

    /// Integrand of the polar (κ′, φ) integral at k′ = κ′(c, s) for k̂′·u = `s_dot`:
    /// [D_xx, D_yy, D_xy, F_x, F_y] weights (before the constant prefactors).
    ///
    /// `linear` = (κ_r, b) of the ray's continuum resonance: within 1e-5κ_r of it the continuum
    /// part κ′² + S²X_r of K²ε·G is taken as (κ′ − κ_r)(κ′ + b), which avoids its cancellation, and
    /// the grid's and the aliases' difference from it is added.
    fn integrand(&self, kappa: f64, c: f64, sn: f64, s_dot: f64, linear: Option<(f64, f64, f64)>) -> [f64; 5] {
        let Some(r) = self.response(kappa, c, sn, s_dot) else { return [0.0; 5] };
        let Response { k, k2, gauss, chi, source, st2 } = r;
        // 1/(K²ε) = G/(k² + Gχ) with G = e^(−k²a²): no division by K².
        let re = match linear {
            Some((kr, b, x_re)) if (kappa - kr).abs() < 1e-5 * kr => {
                let kp2 = kappa * kappa;
                let continuum = self.plasma.form_factor(kappa, c, sn).powi(2) * x_re;
                (kappa - kr) * (kappa + b) + (k2 - kp2) + (gauss * chi.re - continuum)
            }
            _ => k2 + gauss * chi.re,
        };
        let inv = gauss / Complex64::new(re, gauss * chi.im);
        let wd = kappa * st2 * source * inv.norm_sqr();
        let wf = kappa * st2 * inv.im;
        [k[0] * k[0] * wd, k[1] * k[1] * wd, k[0] * k[1] * wd, k[0] * wf, k[1] * wf]
    }

    /// The alias sums at k′ = κ′(c, s) for k̂′·u = `s_dot`; None where the test particle does not
    /// couple (S(k′) = 0) or k′ folds onto k = 0.
    fn response(&self, kappa: f64, c: f64, sn: f64, s_dot: f64) -> Option<Response> {
        let kp = [kappa * c, kappa * sn];
        let k = self.fold(kp);
        let k2 = k[0] * k[0] + k[1] * k[1];
        let s_test = self.spline(kp[0], kp[1]);
        if k2 == 0.0 || s_test == 0.0 {
            return None;
        }
        let a2 = self.plasma.gaussian_width * self.plasma.gaussian_width;
        let gauss = (-k2 * a2).exp();
        let omega = kappa * s_dot;
        let (kg, m) = (self.kg(), self.aliases as i64);
        let mut chi = Complex64::new(0.0, 0.0);
        let mut source = 0.0;
        for qx in -m..=m {
            let kqx = kp[0] + qx as f64 * kg;
            for qy in -m..=m {
                let kqy = kp[1] + qy as f64 * kg;
                let kq2 = kqx * kqx + kqy * kqy;
                let sq = self.spline(kqx, kqy);
                if sq == 0.0 || kq2 == 0.0 {
                    continue;
                }
                let sq2 = sq * sq;
                // The q = 0 term exactly as the continuum's (s = k̂′·u, weight 1 when k = k′):
                // round-off jitter here would be noise on a narrow Cherenkov peak.
                let (kn, s, weight) = if qx == 0 && qy == 0 {
                    (kappa, s_dot, if k == kp { 1.0 } else { (k[0] * kqx + k[1] * kqy) / kq2 })
                } else {
                    let kn = kq2.sqrt();
                    (kn, omega / kn, (k[0] * kqx + k[1] * kqy) / kq2)
                };
                chi += sq2 * weight * susceptibility_x(s);
                source += sq2 * maxwellian_1d(s) / kn;
            }
        }
        Some(Response { k, k2, gauss, chi, source, st2: s_test * s_test })
    }

    /// κ′ breakpoints of a ray at direction (c, s): 0, κ_max, zone-boundary crossings and the
    /// continuum resonance with its geometric neighbours.
    fn ray_points(&self, c: f64, sn: f64, s_dot: f64, k_max: f64) -> (Vec<f64>, Option<(f64, f64, f64)>) {
        let p = &self.plasma;
        let mut points = vec![0.0, k_max];
        if self.operators == Operators::Grid {
            for comp in [c.abs(), sn.abs()] {
                if comp > 1e-12 {
                    let mut j = 0.0;
                    loop {
                        let kb = (2.0 * j + 1.0) * PI / (p.dx * comp);
                        if kb >= k_max {
                            break;
                        }
                        points.push(kb);
                        j += 1.0;
                    }
                }
            }
        }
        if self.operators == Operators::Grid && self.aliases > 0 {
            // Zeros of Re(K²εG) (aliased Langmuir waves: small zone k driven at k′·v ≈ ±ω_p)
            // inside each continuous piece, bracketed on a uniform sample and bisected; each gets
            // breakpoints at its width × 8^j like the continuum resonance.
            points.sort_by(f64::total_cmp);
            points.dedup();
            let eps = |kappa: f64| self.response(kappa, c, sn, s_dot).map(|r| (r.k2 + r.gauss * r.chi.re, r.gauss * r.chi.im));
            let mut extra = Vec::new();
            for w in points.windows(2) {
                let (lo, hi) = (w[0], w[1]);
                let h = (hi - lo) / ROOT_SAMPLES as f64;
                let mut prev: Option<(f64, f64)> = None;
                for i in 0..=ROOT_SAMPLES {
                    let x = if i == 0 { lo + 1e-9 * h } else if i == ROOT_SAMPLES { hi - 1e-9 * h } else { lo + i as f64 * h };
                    let Some((re, _)) = eps(x) else { prev = None; continue };
                    if let Some((xp, rp)) = prev {
                        if rp * re < 0.0 {
                            let (mut a, mut b, mut fa) = (xp, x, rp);
                            for _ in 0..60 {
                                let mid = 0.5 * (a + b);
                                let Some((fm, _)) = eps(mid) else { break };
                                if fm * fa > 0.0 {
                                    a = mid;
                                    fa = fm;
                                } else {
                                    b = mid;
                                }
                            }
                            let root = 0.5 * (a + b);
                            let d = 1e-6 * h;
                            if let (Some((r1, im)), Some((r0, _))) = (eps(root + d), eps(root - d)) {
                                let slope = ((r1 - r0) / (2.0 * d)).abs();
                                let width = if slope > 0.0 { im.abs() / slope } else { h };
                                extra.push(root);
                                let mut dd = width.max(1e-14 * root);
                                while dd < h {
                                    for q in [root - dd, root + dd] {
                                        if q > lo && q < hi {
                                            extra.push(q);
                                        }
                                    }
                                    dd *= 8.0;
                                }
                            }
                        }
                    }
                    prev = Some((x, re));
                }
            }
            points.extend(extra);
        }
        let x = susceptibility_x(s_dot);
        let mut linear = None;
        if x.re < 0.0 {
            if let Some((kr, slope)) = resonance(p, c, sn, x.re, k_max) {
                let s2 = p.form_factor(kr, c, sn).powi(2);
                linear = Some((kr, kr + x.re * 2.0 * s2 * p.dln_form_factor(kr, c, sn), x.re));
                super::resonance_breakpoints(kr, s2 * x.im.abs() / slope, k_max, &mut points);
            }
        }
        points.sort_by(f64::total_cmp);
        points.dedup();
        (points, linear)
    }

    /// D and the polarisation drag F at velocity u (v_th), in v_th²ω_p and v_thω_p.
    pub fn tensor_at(&self, u: [f64; 2], accuracy: Accuracy) -> Result<Tensor, TheoryError> {
        let inner = Tolerance { rel: 0.1 * accuracy.rel, abs: 1e-300, max_intervals: 4000 };
        let outer = Tolerance { rel: accuracy.rel, abs: 1e-300, max_intervals: 4000 };
        let k_max = self.plasma.kappa_max();
        let mut kappa_evals = 0usize;
        let mut inner_ok = true;
        let r = integrate(
            |phi| {
                let (c, sn) = (phi.cos(), phi.sin());
                let s = c * u[0] + sn * u[1];
                if s.abs() > S_ANALYTIC {
                    // The continuum's Lorentzian (aliases negligible at κ′ < 0.15); its weights
                    // k̂k̂·h_d and k̂·h_f carry the same prefactors as this integrand's.
                    let ([h_d, h_f], _, ok) = kappa_integrals(&self.plasma, c, sn, s, inner);
                    inner_ok &= ok;
                    return [c * c * h_d, sn * sn * h_d, c * sn * h_d, c * h_f, sn * h_f];
                }
                let (points, linear) = self.ray_points(c, sn, s, k_max);
                let r = integrate(|kappa| self.integrand(kappa, c, sn, s, linear), &points, inner);
                kappa_evals += r.evals;
                inner_ok &= r.converged;
                r.value
            },
            &angle_breakpoints(u),
            outer,
        );
        if !r.converged || !inner_ok || r.value.iter().any(|v| !v.is_finite()) {
            return Err(TheoryError::NotConverged { vx: u[0], vy: u[1], error: r.error });
        }
        // Same prefactors as the continuum: D 1/(πN) (φ over [0, π], 1/2π), F 1/(2π²N).
        let d_scale = 1.0 / (PI * self.plasma.n_lambda_d2);
        let f_scale = 1.0 / (2.0 * PI * PI * self.plasma.n_lambda_d2);
        let [dxx, dyy, dxy, fx, fy] = r.value;
        Ok(Tensor {
            d_xx: dxx * d_scale,
            d_yy: dyy * d_scale,
            d_xy: dxy * d_scale,
            f_x: fx * f_scale,
            f_y: fy * f_scale,
            phi_evals: r.evals,
            kappa_evals,
        })
    }

    /// The coefficients at speed u ≥ 0 along x̂ (as [`super::radial_point`]).
    pub fn radial_point(&self, u: f64, accuracy: Accuracy) -> Result<RadialPoint, TheoryError> {
        super::radial_point_with(|v| self.tensor_at(v, accuracy), u)
    }

    /// [`Self::radial_point`] at each speed, in parallel over speeds (thread-count independent).
    pub fn radial_profile(&self, speeds: &[f64], accuracy: Accuracy) -> Result<Vec<RadialPoint>, TheoryError> {
        speeds.par_iter().map(|&u| self.radial_point(u, accuracy)).collect()
    }
}

/// The periodic box of a PIC run: `nx × ny` cells of the scheme's Δx.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BoxModes {
    pub nx: usize,
    pub ny: usize,
}

impl Scheme {
    /// D and F at velocity u for the discrete modes of a periodic box (the modes the PIC code
    /// has): ∫d²k′/(2π)² → (1/L_xL_y)Σ over zone modes k ≠ 0 and test aliases k′ = k + p k_g,
    /// |p|_∞ ≤ M, with the field-particle sums over k_q = k + q k_g, |q|_∞ ≤ M. The Nyquist
    /// components of the gradient are zeroed as in the solver. With exact operators the field sum
    /// is the single term k′ (no aliases) and κ = k′: the continuum integrand on the mode lattice.
    /// No quadrature, hence no convergence failure: narrow resonances are sampled where the box
    /// has modes, as in the simulation.
    pub fn box_tensor_at(&self, modes: BoxModes, u: [f64; 2]) -> Tensor {
        self.box_tensors(modes, &[u]).remove(0)
    }

    /// [`Self::box_tensor_at`] at several velocities, sharing each mode's alias lattice.
    pub fn box_tensors(&self, modes: BoxModes, us: &[[f64; 2]]) -> Vec<Tensor> {
        let dx = self.plasma.dx;
        let (nx, ny) = (modes.nx, modes.ny);
        let wave = |i: usize, n: usize| {
            let m = if i <= n / 2 { i as f64 } else { i as f64 - n as f64 };
            2.0 * PI * m / (n as f64 * dx)
        };
        let nu = us.len();
        // Rows in parallel, each summed in order, then the rows in order: thread-count independent.
        let rows: Vec<Vec<[f64; 5]>> = (0..nx)
            .into_par_iter()
            .map(|i| {
                let mut acc = vec![[0.0; 5]; nu];
                let kx0 = wave(i, nx);
                let nyq_x = nx % 2 == 0 && i == nx / 2;
                let mut lattice = Vec::new();
                for j in 0..ny {
                    if i == 0 && j == 0 {
                        continue;
                    }
                    let kz = [kx0, wave(j, ny)];
                    let nyq_y = ny % 2 == 0 && j == ny / 2;
                    self.lattice(kz, [nyq_x, nyq_y], &mut lattice);
                    for (a, u) in acc.iter_mut().zip(us) {
                        let w = self.zone_mode_weights(kz, [nyq_x, nyq_y], &lattice, *u);
                        for (a, w) in a.iter_mut().zip(w) {
                            *a += w;
                        }
                    }
                }
                acc
            })
            .collect();
        let mut sum = vec![[0.0; 5]; nu];
        for r in rows {
            for (s, r) in sum.iter_mut().zip(r) {
                for (s, r) in s.iter_mut().zip(r) {
                    *s += r;
                }
            }
        }
        let area = nx as f64 * ny as f64 * dx * dx;
        let n = self.plasma.n_lambda_d2;
        let (d_scale, f_scale) = (2.0 * PI / (n * area), 1.0 / (n * area));
        let m = self.aliases as usize;
        sum.into_iter()
            .map(|s| Tensor {
                d_xx: s[0] * d_scale,
                d_yy: s[1] * d_scale,
                d_xy: s[2] * d_scale,
                f_x: s[3] * f_scale,
                f_y: s[4] * f_scale,
                phi_evals: 0,
                kappa_evals: nx * ny * (2 * m + 1) * (2 * m + 1),
            })
            .collect()
    }

    /// The alias lattice k_p = kz + p k_g, |p|_∞ ≤ M, of a zone mode: (k_p, S²(k_p), |k_p|,
    /// κ·k_p/k_p²), leaving out terms with S² < 1e-11 (they change the sums by less than 1e-9
    /// relative: S² of the zone term is at least (2/π)^(4(n+1)) ≥ 7e-4).
    fn lattice(&self, kz: [f64; 2], nyquist: [bool; 2], out: &mut Vec<([f64; 2], f64, f64, f64)>) {
        out.clear();
        let (m, kg) = (self.aliases as i64, self.kg());
        let kappa = self.kappa_of(kz, nyquist);
        for qx in -m..=m {
            for qy in -m..=m {
                let kq = [kz[0] + qx as f64 * kg, kz[1] + qy as f64 * kg];
                let kq2 = kq[0] * kq[0] + kq[1] * kq[1];
                let sq = self.spline(kq[0], kq[1]);
                if sq * sq < 1e-11 || kq2 == 0.0 {
                    continue;
                }
                let weight = match self.operators {
                    Operators::Grid => (kappa[0] * kq[0] + kappa[1] * kq[1]) / kq2,
                    Operators::Exact => 1.0,
                };
                out.push((kq, sq * sq, kq2.sqrt(), weight));
            }
        }
    }

    /// Gradient κ of a zone mode (Nyquist components zeroed as in the solver).
    fn kappa_of(&self, kz: [f64; 2], nyquist: [bool; 2]) -> [f64; 2] {
        [if nyquist[0] { 0.0 } else { kz[0] }, if nyquist[1] { 0.0 } else { kz[1] }]
    }

    /// Σ over the test aliases k′ of a zone mode of [D_xx, D_yy, D_xy, F_x, F_y] without the
    /// 1/(NL²) factors: S²(k′)κκ/(K⁴|ε|²)·Σ_q S²(k_q)g/|k_q| and S²(k′)κ Im(1/ε)/K². Grid
    /// operators: κ, K² of the zone mode, field sums over the lattice. Exact: κ = k′, K² of k′,
    /// field sum the single term k′.
    fn zone_mode_weights(&self, kz: [f64; 2], nyquist: [bool; 2], lattice: &[([f64; 2], f64, f64, f64)], u: [f64; 2]) -> [f64; 5] {
        let a2 = self.plasma.gaussian_width * self.plasma.gaussian_width;
        let mut out = [0.0; 5];
        let omegas: Vec<f64> = lattice.iter().map(|(kp, ..)| kp[0] * u[0] + kp[1] * u[1]).collect();
        let (kz_kappa, kz2) = (self.kappa_of(kz, nyquist), kz[0] * kz[0] + kz[1] * kz[1]);
        for (t, &(kp, st2, kpn, _)) in lattice.iter().enumerate() {
            let omega = omegas[t];
            let (kappa, k2, chi, source) = match self.operators {
                Operators::Grid => {
                    let mut chi = Complex64::new(0.0, 0.0);
                    let mut source = 0.0;
                    for &(_, sq2, kn, weight) in lattice {
                        let s = omega / kn;
                        chi += sq2 * weight * susceptibility_x(s);
                        source += sq2 * maxwellian_1d(s) / kn;
                    }
                    (kz_kappa, kz2, chi, source)
                }
                Operators::Exact => {
                    let s = omega / kpn;
                    (kp, kpn * kpn, st2 * susceptibility_x(s), st2 * maxwellian_1d(s) / kpn)
                }
            };
            let gauss = (-k2 * a2).exp();
            // 1/(K²ε) = G/(k² + Gχ).
            let inv = gauss / Complex64::new(k2 + gauss * chi.re, gauss * chi.im);
            let wd = st2 * source * inv.norm_sqr();
            let wf = st2 * inv.im;
            let w = [kappa[0] * kappa[0] * wd, kappa[1] * kappa[1] * wd, kappa[0] * kappa[1] * wd, kappa[0] * wf, kappa[1] * wf];
            for (o, w) in out.iter_mut().zip(w) {
                *o += w;
            }
        }
        out
    }

    /// [`Self::radial_point`] for the modes of a box (its four velocities in one pass).
    pub fn box_radial_point(&self, modes: BoxModes, u: f64) -> RadialPoint {
        let h = 1e-3 * u.max(1.0);
        let t = self.box_tensors(modes, &[[u, 0.0], [u + h, 0.0], [u - h, 0.0], [u, h]]);
        let mut at = t.into_iter();
        let mut next = || at.next().expect("four tensors");
        let (a, p, m, s) = (next(), next(), next(), next());
        super::radial_point_with(|v| Ok(if v == [u, 0.0] { a } else if v == [u + h, 0.0] { p } else if v == [u - h, 0.0] { m } else { s }), u)
            .expect("box sums cannot fail")
    }

    /// [`Self::box_radial_point`] at each speed (parallel over modes, thread-count independent).
    pub fn box_radial_profile(&self, modes: BoxModes, speeds: &[f64]) -> Vec<RadialPoint> {
        speeds.iter().map(|&u| self.box_radial_point(modes, u)).collect()
    }
}

/// One step of the alias-order search: the coefficients at the probe speeds and their largest
/// relative change from the previous order.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AliasStep {
    pub aliases: u32,
    pub points: Vec<RadialPoint>,
    /// max over probes and (A_∥, D_∥, D_⊥) of |x_M − x_(M−1)|/max(|x_M|, floor); None at M = 0.
    pub max_rel_change: Option<f64>,
}

/// Grow the alias order M = 0, 1, 2, ... until the coefficients `profile(M)` (at some probe
/// speeds) change by less than `tol` (relative; A_∥ relative to max(|A_∥|, 0.1·D_∥), as A_∥ → 0
/// at v → 0) from M − 1 to M. Returns the converged M and the history; an error if M reaches
/// [`MAX_ALIASES`] first.
pub fn converge_aliases(mut profile: impl FnMut(u32) -> Result<Vec<RadialPoint>, TheoryError>, tol: f64) -> Result<(u32, Vec<AliasStep>), TheoryError> {
    let mut history: Vec<AliasStep> = Vec::new();
    for m in 0..=MAX_ALIASES {
        let points = profile(m)?;
        let change = history.last().map(|prev| {
            prev.points
                .iter()
                .zip(&points)
                .map(|(a, b)| {
                    let floor = 0.1 * b.d_par.abs();
                    let rel = |x: f64, y: f64, fl: f64| (x - y).abs() / y.abs().max(fl).max(f64::MIN_POSITIVE);
                    rel(a.a_par, b.a_par, floor).max(rel(a.d_par, b.d_par, 0.0)).max(rel(a.d_perp, b.d_perp, 0.0))
                })
                .fold(0.0, f64::max)
        });
        let done = change.is_some_and(|c| c < tol);
        history.push(AliasStep { aliases: m, points, max_rel_change: change });
        if done {
            return Ok((m, history));
        }
    }
    Err(TheoryError::BadParameter { key: "alias_tol", value: tol, why: "alias sums did not converge by M = 24; loosen --alias-tol" })
}

/// The size of the leap-frog effects the theory leaves out, for a step `dt` (1/ω_p) and speeds up
/// to `v_max` (v_th).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct TimeStepEffects {
    pub omega_p_dt: f64,
    /// Relative shift (ω_pΔt)²/24 of the leap-frog Langmuir frequency, (2/Δt)asin(ω_pΔt/2) − ω_p.
    pub langmuir_frequency_shift: f64,
    /// Relative change (ω_pΔt)²/12 of the orbit response at ω = ω_p.
    pub response_factor: f64,
    /// |k| (1/λ_D) the first time alias needs to resonate with thermal particles at v_max:
    /// 2π/((v_max + 4)Δt).
    pub time_alias_kappa: f64,
    /// Fraction of the continuum D weight ∫S⁴/κ² dκ along k̂ = x̂ (ε = 1) that lies beyond it.
    pub time_alias_weight: f64,
}

/// [`TimeStepEffects`] of `plasma` for the step `dt`.
pub fn time_step_effects(plasma: &Plasma, dt: f64, v_max: f64) -> TimeStepEffects {
    let shift = (2.0 / dt) * (0.5 * dt).asin() - 1.0;
    let kt = 2.0 * PI / ((v_max + 4.0) * dt);
    let k_max = plasma.kappa_max().max(2.0 * kt);
    let tol = Tolerance { rel: 1e-8, ..Tolerance::default() };
    // Weight S⁴/κ² with a κ² regulator at small κ (|1/ε|² ≈ κ⁴/(1 + κ²)² there).
    let w = |k: f64| [plasma.form_factor(k, 1.0, 0.0).powi(4) * k * k / (1.0 + k * k).powi(2)];
    let total = integrate(w, &[0.0, 1.0, kt.min(k_max), k_max], tol).value[0];
    let beyond = integrate(w, &[kt, k_max], tol).value[0];
    TimeStepEffects {
        omega_p_dt: dt,
        langmuir_frequency_shift: shift,
        response_factor: dt * dt / 12.0,
        time_alias_kappa: kt,
        time_alias_weight: if total > 0.0 { beyond / total } else { 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(rel: f64) -> Accuracy {
        Accuracy { rel }
    }

    #[test]
    fn continuum_limit_is_the_continuum_theory() {
        // Exact operators and no aliases reproduce the continuum code path, Gaussian included
        // (applied in the solve here, in the form factor there).
        for (order, dx, a) in [(1, 1.0, 0.0), (2, 2.0, 0.0), (1, 0.5, 0.7)] {
            let plasma = Plasma::new(16.0, order, dx, a).unwrap();
            for u in [[0.3, 0.0], [1.7, 0.4], [4.0, -1.0], [6.5, 0.0], [2.0, 5.0]] {
                let want = super::super::tensor_at(&plasma, u, acc(1e-9)).unwrap();
                let got = Scheme::continuum(plasma).tensor_at(u, acc(1e-9)).unwrap();
                for (g, w, scale) in [
                    (got.d_xx, want.d_xx, want.d_xx),
                    (got.d_yy, want.d_yy, want.d_yy),
                    (got.d_xy, want.d_xy, want.d_xx),
                    (got.f_x, want.f_x, want.f_x.abs().max(want.f_y.abs())),
                    (got.f_y, want.f_y, want.f_x.abs().max(want.f_y.abs())),
                ] {
                    assert!((g - w).abs() <= 1e-8 * scale.abs(), "order {order} dx {dx} a {a} u {u:?}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn grid_operators_without_aliases_inside_the_zone_are_the_continuum() {
        // Fine grid (Δx = 0.25 λ_D, quartic): the zone edge π/Δx ≈ 12.6 is where S⁴ has no
        // weight left, so folding changes nothing and aliases change D and F by < 1e-5.
        let plasma = Plasma::new(16.0, 4, 0.25, 0.0).unwrap();
        let u = [1.3, 0.2];
        let cont = super::super::tensor_at(&plasma, u, acc(1e-8)).unwrap();
        for m in [0, 2] {
            let pic = Scheme::pic(plasma, m).tensor_at(u, acc(1e-8)).unwrap();
            assert!((pic.d_xx / cont.d_xx - 1.0).abs() < 1e-5, "M = {m}: {} vs {}", pic.d_xx, cont.d_xx);
            assert!((pic.f_x / cont.f_x - 1.0).abs() < 1e-5, "M = {m}: {} vs {}", pic.f_x, cont.f_x);
        }
    }

    #[test]
    fn alias_sums_converge_and_matter_on_coarse_grids() {
        // Linear shapes at Δx = 2 λ_D: the alias sum converges (changes shrink with M) and its
        // converged result differs from the unaliased grid theory by more than the tolerance.
        let plasma = Plasma::new(16.0, 1, 2.0, 0.0).unwrap();
        let modes = BoxModes { nx: 64, ny: 64 };
        let (m, history) = converge_aliases(|m| Ok(Scheme::pic(plasma, m).box_radial_profile(modes, &[1.0])), 1e-3).unwrap();
        assert!((1..=8).contains(&m), "M = {m}");
        let changes: Vec<f64> = history.iter().filter_map(|h| h.max_rel_change).collect();
        assert!(changes.last().unwrap() < &1e-3);
        assert!(changes.windows(2).all(|w| w[1] < w[0]), "changes {changes:?}");
        let (p0, pm) = (&history[0].points[0], &history.last().unwrap().points[0]);
        assert!((pm.d_par / p0.d_par - 1.0).abs() > 1e-2, "aliases change D_par by {}", pm.d_par / p0.d_par - 1.0);
    }

    #[test]
    fn aliasing_breaks_the_fluctuation_dissipation_balance() {
        // Continuum and unaliased fine-grid theory: F_∥ = −D_∥u/2 (the Maxwellian is stationary);
        // with aliases on a coarse grid it is not (grid heating), by more than the quadrature error.
        let u = 1.2;
        let fine = Plasma::new(16.0, 2, 1.0, 0.0).unwrap();
        let t = Scheme::pic(fine, 0).tensor_at([u, 0.0], acc(1e-8)).unwrap();
        let balance = |t: &Tensor| (t.f_x + 0.5 * t.d_xx * u) / (0.5 * t.d_xx * u);
        assert!(balance(&t).abs() < 1e-4, "unaliased grid: {}", balance(&t));
        let coarse = Plasma::new(16.0, 1, 4.0, 0.0).unwrap();
        let t = Scheme::pic(coarse, 3).box_tensor_at(BoxModes { nx: 32, ny: 32 }, [u, 0.0]);
        assert!(balance(&t).abs() > 1e-2, "aliased coarse grid: {}", balance(&t));
    }

    #[test]
    fn time_step_effects_are_small_at_the_default_step() {
        let plasma = Plasma::new(16.0, 1, 1.0, 0.0).unwrap();
        let e = time_step_effects(&plasma, 0.1, 3.0);
        assert!((e.langmuir_frequency_shift - 0.01 / 24.0).abs() < 1e-6);
        assert!(e.time_alias_weight < 1e-3 && e.time_alias_weight > 0.0, "{}", e.time_alias_weight);
        // A large step moves weight into the first time alias.
        assert!(time_step_effects(&plasma, 1.0, 3.0).time_alias_weight > 10.0 * e.time_alias_weight);
    }

    #[test]
    fn box_sums_tend_to_the_continuum_and_agree_with_the_integral() {
        // Exact operators on the mode lattice of ever larger boxes converge to the continuum
        // integral (Δx = λ_D, quadratic, u = 0.8 v_th: no narrow resonance).
        let plasma = Plasma::new(16.0, 2, 1.0, 0.0).unwrap();
        let c = super::super::tensor_at(&plasma, [0.8, 0.0], acc(1e-9)).unwrap();
        let err = |n: usize| {
            let b = Scheme::continuum(plasma).with_aliases(1).box_tensor_at(BoxModes { nx: n, ny: n }, [0.8, 0.0]);
            [(b.d_xx / c.d_xx - 1.0).abs(), (b.d_yy / c.d_yy - 1.0).abs(), (b.f_x / c.f_x - 1.0).abs()].into_iter().fold(0.0, f64::max)
        };
        let (e32, e64) = (err(32), err(64));
        assert!(e64 < 3e-4 && e64 < 0.5 * e32, "box 32: {e32}, box 64: {e64}");
        // The aliased grid theory: box sums and the adaptive integral are independent methods.
        let coarse = Plasma::new(64.0, 1, 3.0, 0.0).unwrap();
        let b = Scheme::pic(coarse, 2).box_tensor_at(BoxModes { nx: 85, ny: 85 }, [0.7, 0.0]);
        let q = Scheme::pic(coarse, 2).tensor_at([0.7, 0.0], acc(1e-5)).unwrap();
        for (x, y) in [(b.d_xx, q.d_xx), (b.d_yy, q.d_yy), (b.f_x, q.f_x)] {
            assert!((x / y - 1.0).abs() < 1e-3, "box {x} vs integral {y}");
        }
    }
}
