//! Kinetic theory of test-particle drag and diffusion in a 2D thermal plasma of finite-size
//! particles (Lenard–Balescu with Debye shielding), by adaptive quadrature over k.
//!
//! # Derivation (2D, electrostatic, area density n, units v_th, 1/ω_p, λ_D = v_th/ω_p)
//!
//! A particle of charge q, mass m and shape S(x) carries the charge density q S(x − x_p), whose
//! Fourier transform is q S(k); it feels the field averaged over its shape, which brings a second
//! S(k). For the B-spline of order n on a mesh Δx (order 1 linear, 2 quadratic) S(k) =
//! [sinc(k_xΔx/2) sinc(k_yΔx/2)]^(n+1), optionally times a Gaussian e^(−k²a²/2) (Okuda & Birdsall,
//! Phys. Fluids 13, 2123 (1970); Birdsall & Langdon, *Plasma Physics via Computer Simulation*,
//! ch. 8 and 12). Aliasing by the grid is neglected here; [`pic`] adds it, with the PIC code's field
//! operators.
//!
//! *Diffusion.* A field particle at velocity v′ passing the test particle (velocity v) on a straight
//! line gives, with the 2D Poisson solution φ_k = ρ_k/(ε₀k²), the kick
//! Δv = −(iq²/mε₀)∫d²k/(2π)² k S²/k² e^(ik·r₀) 2πδ(k·(v − v′)). Averaging Δv_iΔv_j over field
//! particles uniformly spread in r₀ with density n f(v′) and using
//! |∫₀^T e^(iωt)dt|² → 2πTδ(ω) gives the Landau/Lenard–Balescu rate
//! D_ij = ⟨Δv_iΔv_j⟩/Δt = n (q²/mε₀)² ∫d²v′ f(v′) ∫d²k/(2π)² k_ik_j S⁴/(k⁴|ε(k, k·v)|²) 2πδ(k·(v − v′))
//! (Lenard, Ann. Phys. 10, 390 (1960); Balescu, Phys. Fluids 3, 52 (1960)); the dielectric
//! screening 1/|ε|² dresses both particles. In 3D without shielding this reduces to the Landau
//! coefficient n q⁴ lnΛ/(4π ε₀² m²)·(δ_ij − û_iû_j)/u, which fixes the constant. In 2D,
//! ω_p² = nq²/(ε₀m), and ∫d²v′ f δ(k(k̂·v − k̂·v′)) = g(k̂·u)/(k v_th) with g the unit 1D
//! Maxwellian, so with κ = kλ_D
//!
//! D_ij = (v_th²ω_p/(nλ_D²)) · (1/2π) ∫₀^∞dκ ∫₀^{2π}dφ k̂_ik̂_j S⁴ g(k̂·u) / (κ² |ε(κ, k̂·u)|²),
//!
//! exactly the formula of the design issue (no missing constant). The 2D Coulomb (log) potential
//! makes ∫dκ/κ² diverge at large κ for point particles: the shape factor is what makes 2D
//! collisions finite (Hockney, Phys. Fluids 9, 1826 (1966) and J. Comput. Phys. 8, 19 (1971):
//! collision times of 2D finite-size particles grow ∝ nλ_D²).
//!
//! *Dielectric.* ε = 1 + S²χ, χ = [1 + ζZ(ζ)]/κ², ζ = ω/(√2 k v_th) = k̂·u/√2: the argument ζ
//! depends on the direction of k only, so X = 1 + ζZ(ζ) is computed once per angle
//! ([`faddeeva`]), and 1/ε = κ²/(κ² + S²X).
//!
//! *Polarisation drag.* The test particle's own wake φ_k = qS·2πδ(ω − k·v)/(ε₀k²ε) pulls back on
//! it with F/m = (q²/mε₀)∫d²k/(2π)² k S² Im(1/ε(k, k·v))/k², i.e.
//!
//! F_i = (v_thω_p/(nλ_D²)) · (1/4π²) ∫₀^∞dκ ∫₀^{2π}dφ k̂_i S² Im(1/ε(κ, k̂·u)).
//!
//! With Im χ = π (k̂·u) g(k̂·u)/κ² this equals −D_ij u_j/2 identically (fluctuation–dissipation),
//! which is what makes the Maxwellian stationary; the code computes F from the complex 1/ε, not
//! from that identity, so the identity is a check. The Fokker–Planck drag of colop's equation
//! ∂f/∂t = −∂_i(A_if) + ½∂_i∂_j(D_ijf) is A_i = ½∂_jD_ij + F_i.
//!
//! *Quadrature.* κ by adaptive Gauss–Kronrod on [0, κ_max] (κ_max from the form-factor tail), split
//! at the Langmuir-wave (Cherenkov) resonance κ² + S²Re X = 0 and at geometric distances of its
//! width; for |k̂·u| > 7 the resonance is narrower than 1e-9 κ and its Lorentzian weight is taken
//! analytically (the non-resonant rest is below e^(−24) relative). The angle by adaptive
//! Gauss–Kronrod on [0, π] (k → −k symmetry) split where k̂·u crosses 0, ±0.5, ±1, ±1.30693
//! (onset of the resonance, 1 + ζ Re Z = 0 at ζ = 0.92414), ±2, ±3, ±4.5 and ±7.
//!
//! *Direction.* S is not isotropic (it depends on k_x and k_y), so D is not exactly a function of
//! |v|: [`radial_point`] evaluates along v ∥ x̂, where D_xy = 0 by mirror symmetry, so
//! A_∥ = A_x, D_∥ = D_xx, D_⊥ = D_yy. [`tensor_at`] takes any direction.
//!
//! *Large v* (u ≫ 1, checked in the tests): Cherenkov emission of plasma waves dominates the
//! parallel terms, D_∥ → 1/(2u²), F_∥ → −1/(4u) (in v_th²ω_p/(nλ_D²) and v_thω_p/(nλ_D²)), and
//! D_⊥ → C_⊥/u with C_⊥ = (1/π)∫ds g(s) ∫dκ S⁴/(κ²|ε|²) at k̂ ⊥ v.

pub mod faddeeva;
pub mod output;
pub mod pic;
pub mod quadrature;

use num_complex::Complex64;
use quadrature::{integrate, Tolerance};
use rayon::prelude::*;
use std::f64::consts::{PI, SQRT_2};

/// |k̂·u| above which the Cherenkov resonance is integrated analytically.
pub(crate) const S_ANALYTIC: f64 = 7.0;

/// Why a theory calculation cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum TheoryError {
    #[error("theory: {key} = {value} is invalid: {why}")]
    BadParameter { key: &'static str, value: f64, why: &'static str },
    #[error("theory: quadrature did not converge at v = ({vx}, {vy}) v_th (error estimate {error:e}); loosen --rel-tol")]
    NotConverged { vx: f64, vy: f64, error: f64 },
}

/// The plasma and particle shape the coefficients are computed for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plasma {
    /// n λ_D² (= ppc·(λ_D/Δx)² in a PIC run).
    pub n_lambda_d2: f64,
    /// B-spline order n of the particle shape (1 linear, 2 quadratic, ...); S = sinc^(n+1).
    pub shape_order: u32,
    /// Mesh spacing Δx in λ_D.
    pub dx: f64,
    /// Width a of an extra Gaussian factor e^(−k²a²/2), λ_D (0: none).
    pub gaussian_width: f64,
}

impl Plasma {
    /// A validated plasma description.
    pub fn new(n_lambda_d2: f64, shape_order: u32, dx: f64, gaussian_width: f64) -> Result<Self, TheoryError> {
        let bad = |key, value, why| Err(TheoryError::BadParameter { key, value, why });
        if !(n_lambda_d2.is_finite() && n_lambda_d2 > 0.0) {
            return bad("n_lambda_d2", n_lambda_d2, "must be finite and > 0");
        }
        if !(1..=4).contains(&shape_order) {
            return bad("shape", shape_order as f64, "B-spline order must be 1 to 4 (point particles have no finite 2D collision rate)");
        }
        if !(dx.is_finite() && dx > 0.0 && dx <= 10.0) {
            return bad("dx", dx, "must be in (0, 10] Debye lengths");
        }
        if !(gaussian_width.is_finite() && (0.0..=10.0).contains(&gaussian_width)) {
            return bad("gaussian_width", gaussian_width, "must be in [0, 10] Debye lengths");
        }
        Ok(Self { n_lambda_d2, shape_order, dx, gaussian_width })
    }

    /// Form factor S(k) at k = κ·(c, s) (κ in 1/λ_D, (c, s) a unit vector).
    pub fn form_factor(&self, kappa: f64, c: f64, s: f64) -> f64 {
        let half = 0.5 * self.dx * kappa;
        let base = sinc(half * c) * sinc(half * s);
        base.powi(self.shape_order as i32 + 1) * (-0.5 * (kappa * self.gaussian_width).powi(2)).exp()
    }

    /// d ln S/dκ along (c, s).
    pub(crate) fn dln_form_factor(&self, kappa: f64, c: f64, s: f64) -> f64 {
        let half = 0.5 * self.dx;
        (self.shape_order as f64 + 1.0) * half * (c * dln_sinc(half * kappa * c) + s * dln_sinc(half * kappa * s))
            - kappa * self.gaussian_width.powi(2)
    }

    /// κ beyond which S⁴/κ² integrates to less than 1e-16.
    pub(crate) fn kappa_max(&self) -> f64 {
        let p = 4.0 * (self.shape_order as f64 + 1.0);
        let mut k = 10.0f64;
        while k < 1e4 {
            let bound = (2.0 * SQRT_2 / (k * self.dx)).min(1.0).powf(p) * (-2.0 * (k * self.gaussian_width).powi(2)).exp() / k;
            if bound < 1e-17 {
                break;
            }
            k *= 1.25;
        }
        k
    }
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-4 {
        1.0 - x * x / 6.0
    } else {
        x.sin() / x
    }
}

/// d ln sinc(x)/dx = cot x − 1/x.
fn dln_sinc(x: f64) -> f64 {
    if x.abs() < 1e-4 {
        -x / 3.0
    } else {
        x.cos() / x.sin() - 1.0 / x
    }
}

/// Quadrature breakpoints around a resonance at `kr` of width `width`: `kr` itself, then
/// `kr ± width·8ⁿ` inside (0, k_max) (pushed onto `points`, unsorted).
pub(crate) fn resonance_breakpoints(kr: f64, width: f64, k_max: f64, points: &mut Vec<f64>) {
    points.push(kr);
    let mut d = width;
    while d < k_max {
        for q in [kr - d, kr + d] {
            if q > 0.0 && q < k_max {
                points.push(q);
            }
        }
        d *= 8.0;
    }
}

/// The unit 1D Maxwellian g(s) = e^(−s²/2)/√(2π).
pub fn maxwellian_1d(s: f64) -> f64 {
    (-0.5 * s * s).exp() / (2.0 * PI).sqrt()
}

/// X(s) = 1 + ζZ(ζ) with ζ = s/√2: κ²χ for k̂·u = s.
pub fn susceptibility_x(s: f64) -> Complex64 {
    let zeta = s / SQRT_2;
    1.0 + zeta * faddeeva::plasma_z(zeta)
}

/// Accuracy of the quadratures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accuracy {
    /// Relative tolerance of the angle integral (the κ integrals get a tenth of it).
    pub rel: f64,
}

impl Default for Accuracy {
    fn default() -> Self {
        Self { rel: 1e-9 }
    }
}

/// D and the polarisation drag F at one velocity, in v_th²ω_p and v_th·ω_p.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tensor {
    pub d_xx: f64,
    pub d_yy: f64,
    pub d_xy: f64,
    pub f_x: f64,
    pub f_y: f64,
    /// Angles evaluated and κ-integrand evaluations spent.
    pub phi_evals: usize,
    pub kappa_evals: usize,
}

/// The κ integrals at direction k̂ = (c, s_dir) for k̂·u = s: (g·∫S⁴/(κ²|ε|²), ∫S² Im(1/ε)), and the
/// number of κ evaluations.
pub(crate) fn kappa_integrals(plasma: &Plasma, c: f64, sn: f64, s: f64, tol: Tolerance) -> ([f64; 2], usize, bool) {
    let x = susceptibility_x(s);
    let k_max = plasma.kappa_max();
    let resonance = (x.re < 0.0).then(|| resonance(plasma, c, sn, x.re, k_max)).flatten();
    if s.abs() > S_ANALYTIC {
        // Lorentzian limit: g/|Im X| = 1/(π|s|) exactly.
        let Some((kr, slope)) = resonance else { return ([0.0, 0.0], 0, true) };
        let s2 = plasma.form_factor(kr, c, sn).powi(2);
        let h_d = s2 * kr * kr / (slope * s.abs());
        let h_f = -s.signum() * PI * s2 * kr * kr / slope;
        return ([h_d, h_f], 0, true);
    }
    let g = maxwellian_1d(s);
    let mut points = vec![0.0, k_max];
    if let Some((kr, slope)) = resonance {
        let s2 = plasma.form_factor(kr, c, sn).powi(2);
        resonance_breakpoints(kr, s2 * x.im.abs() / slope, k_max, &mut points);
        points.sort_by(f64::total_cmp);
        points.dedup();
    }
    // Near the root, κ² + S²X_r suffers cancellation: use (κ − κ_r)(κ + κ_r + X_r (S²)′(κ_r)).
    let linear = resonance.map(|(kr, _)| {
        let s2 = plasma.form_factor(kr, c, sn).powi(2);
        (kr, kr + x.re * 2.0 * s2 * plasma.dln_form_factor(kr, c, sn))
    });
    let r = integrate(
        |kappa| {
            let sf = plasma.form_factor(kappa, c, sn);
            let s2 = sf * sf;
            let re = match linear {
                Some((kr, b)) if (kappa - kr).abs() < 1e-5 * kr => (kappa - kr) * (kappa + b),
                _ => kappa * kappa + s2 * x.re,
            };
            let inv_eps = kappa * kappa / Complex64::new(re, s2 * x.im);
            [g * s2 * s2 * inv_eps.norm_sqr() / (kappa * kappa).max(f64::MIN_POSITIVE), s2 * inv_eps.im]
        },
        &points,
        tol,
    );
    (r.value, r.evals, r.converged)
}

/// Root κ_r of h(κ) = κ² + S(κ)²X_r (X_r < 0) and |h′(κ_r)|, if inside (0, k_max).
pub(crate) fn resonance(plasma: &Plasma, c: f64, sn: f64, x_re: f64, k_max: f64) -> Option<(f64, f64)> {
    let h = |k: f64| k * k + plasma.form_factor(k, c, sn).powi(2) * x_re;
    // h(0) = X_r < 0 and h(√−X_r) = −X_r(1 − S²) ≥ 0: bisect.
    let (mut lo, mut hi) = (0.0, (-x_re).sqrt().min(k_max));
    if h(hi) < 0.0 {
        return None;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if !(mid > lo && mid < hi) {
            break;
        }
        if h(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let kr = 0.5 * (lo + hi);
    let s2 = plasma.form_factor(kr, c, sn).powi(2);
    let slope = (2.0 * kr + 2.0 * s2 * x_re * plasma.dln_form_factor(kr, c, sn)).abs();
    (kr > 0.0 && slope > 0.0).then_some((kr, slope))
}

/// Angles in [0, π] where k̂·u takes the values where the κ integrand changes character.
pub(crate) fn angle_breakpoints(u: [f64; 2]) -> Vec<f64> {
    let speed = u[0].hypot(u[1]);
    let mut points = vec![0.0, PI];
    if speed > 0.0 {
        let theta = u[1].atan2(u[0]);
        for level in [0.0, 0.5, 1.0, 1.30693, 2.0, 3.0, 4.5, S_ANALYTIC] {
            for sign in [1.0, -1.0] {
                let c = sign * level / speed;
                if c.abs() < 1.0 {
                    for phi in [theta + c.acos(), theta - c.acos()] {
                        let p = phi.rem_euclid(PI);
                        if p > 0.0 && p < PI {
                            points.push(p);
                        }
                    }
                }
            }
        }
    }
    points.sort_by(f64::total_cmp);
    points.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
    points
}

/// D and the polarisation drag F at velocity u (in v_th), in physical units.
pub fn tensor_at(plasma: &Plasma, u: [f64; 2], accuracy: Accuracy) -> Result<Tensor, TheoryError> {
    let inner = Tolerance { rel: 0.1 * accuracy.rel, abs: 1e-300, max_intervals: 4000 };
    let outer = Tolerance { rel: accuracy.rel, abs: 1e-300, max_intervals: 4000 };
    let mut kappa_evals = 0usize;
    let mut inner_ok = true;
    let r = integrate(
        |phi| {
            let (c, sn) = (phi.cos(), phi.sin());
            let s = c * u[0] + sn * u[1];
            let ([h_d, h_f], evals, ok) = kappa_integrals(plasma, c, sn, s, inner);
            kappa_evals += evals;
            inner_ok &= ok;
            [c * c * h_d, sn * sn * h_d, c * sn * h_d, c * h_f, sn * h_f]
        },
        &angle_breakpoints(u),
        outer,
    );
    if !r.converged || !inner_ok || r.value.iter().any(|v| !v.is_finite()) {
        return Err(TheoryError::NotConverged { vx: u[0], vy: u[1], error: r.error });
    }
    let d_scale = 1.0 / (PI * plasma.n_lambda_d2);
    let f_scale = 1.0 / (2.0 * PI * PI * plasma.n_lambda_d2);
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

/// Coefficients at speed u along v̂ = x̂, in v_th·ω_p and v_th²·ω_p.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct RadialPoint {
    pub v: f64,
    /// A_∥ = ½∂_jD_xj + F_∥.
    pub a_par: f64,
    pub d_par: f64,
    pub d_perp: f64,
    /// Polarisation drag F_∥ (from Im 1/ε).
    pub f_par: f64,
    /// ½∂_jD_xj by central differences (step 1e-3·max(1, u)).
    pub half_div_d: f64,
}

impl RadialPoint {
    /// A_∥ − (½∂_jD_xj − D_∥u/2): zero when the Maxwellian is stationary.
    pub fn stationarity_residual(&self) -> f64 {
        self.a_par - (self.half_div_d - 0.5 * self.d_par * self.v)
    }
}

/// The coefficients at speed `u` ≥ 0 along x̂ (four tensor evaluations: the point, u ± h along x̂
/// and h along ŷ, using D_xy(u, −h) = −D_xy(u, h)).
pub fn radial_point(plasma: &Plasma, u: f64, accuracy: Accuracy) -> Result<RadialPoint, TheoryError> {
    radial_point_with(|v| tensor_at(plasma, v, accuracy), u)
}

/// [`radial_point`] for any tensor evaluator (the continuum's or [`pic::Scheme`]'s).
pub(crate) fn radial_point_with(tensor_at: impl Fn([f64; 2]) -> Result<Tensor, TheoryError>, u: f64) -> Result<RadialPoint, TheoryError> {
    let h = 1e-3 * u.max(1.0);
    let at = tensor_at([u, 0.0])?;
    let plus = tensor_at([u + h, 0.0])?;
    let minus = tensor_at([u - h, 0.0])?;
    let side = tensor_at([u, h])?;
    let half_div_d = 0.5 * ((plus.d_xx - minus.d_xx) / (2.0 * h) + side.d_xy / h);
    Ok(RadialPoint { v: u, a_par: half_div_d + at.f_x, d_par: at.d_xx, d_perp: at.d_yy, f_par: at.f_x, half_div_d })
}

/// [`radial_point`] at each speed, in parallel over speeds (each point is computed sequentially, so
/// the result does not depend on the thread count).
pub fn radial_profile(plasma: &Plasma, speeds: &[f64], accuracy: Accuracy) -> Result<Vec<RadialPoint>, TheoryError> {
    speeds.par_iter().map(|&u| radial_point(plasma, u, accuracy)).collect()
}

/// The large-speed limit C_⊥ = lim u·D_⊥ for v̂ = x̂ (v_th³ω_p, the 1/(nλ_D²) included), from its
/// own 1D integral (1/π)∫ds g(s)∫dκ S⁴/(κ²|ε|²) over s = k̂·u at k̂ = ŷ.
pub fn perp_asymptote(plasma: &Plasma, accuracy: Accuracy) -> f64 {
    let inner = Tolerance { rel: 0.1 * accuracy.rel, ..Tolerance::default() };
    let h = |s: f64| kappa_integrals(plasma, 0.0, 1.0, s, inner).0[0];
    let r = integrate(|s| [h(s) + h(-s)], &[0.0, 1.0, 1.30693, 2.0, 3.0, 4.5, S_ANALYTIC], Tolerance { rel: accuracy.rel, ..Tolerance::default() });
    // Beyond S_ANALYTIC the resonant part decays like 1/(2s²): integrate 1/s² tails with t = 1/s.
    let tail = integrate(
        |t| {
            if t == 0.0 {
                return [1.0];
            }
            let s = 1.0 / t;
            [(h(s) + h(-s)) * s * s]
        },
        &[0.0, 1.0 / S_ANALYTIC],
        Tolerance { rel: accuracy.rel, ..Tolerance::default() },
    );
    (r.value[0] + tail.value[0]) / (PI * plasma.n_lambda_d2)
}
