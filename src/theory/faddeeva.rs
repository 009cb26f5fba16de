//! The Faddeeva function w(z) = e^(−z²) erfc(−iz) and the plasma dispersion function Z(ζ) = i√π w(ζ).
//!
//! w is evaluated with Weideman's rational expansion (J. A. C. Weideman, "Computation of the complex
//! error function", SIAM J. Numer. Anal. 31, 1497 (1994)): with L = √(N/√2) and
//! Z = (L + iz)/(L − iz), w(z) = 2p(Z)/(L − iz)² + 1/(√π (L − iz)), p a polynomial of degree N − 1
//! whose coefficients are a discrete Fourier transform computed once. It is accurate in the closed
//! upper half plane; the lower half uses w(z) = 2e^(−z²) − w(−z). On the real axis, where the
//! plasma dispersion function is needed, the real part e^(−x²) is taken exactly so that Landau
//! damping keeps full relative accuracy far in the tail.

use num_complex::Complex64;
use std::sync::OnceLock;

/// Terms of the expansion (N = 40 gives about 1e-15 absolute accuracy).
const N_TERMS: usize = 40;

fn constant_l() -> f64 {
    (N_TERMS as f64 / std::f64::consts::SQRT_2).sqrt()
}

/// Polynomial coefficients, lowest degree first.
fn coefficients() -> &'static [f64; N_TERMS] {
    static COEFFS: OnceLock<[f64; N_TERMS]> = OnceLock::new();
    COEFFS.get_or_init(|| {
        let m = 2 * N_TERMS;
        let m2 = 2 * m;
        let l = constant_l();
        // f over k = −M+1..M−1 with a leading zero, fftshift-ed.
        let mut samples = vec![0.0; m2];
        for (idx, k) in (-(m as i64) + 1..m as i64).enumerate() {
            let theta = k as f64 * std::f64::consts::PI / m as f64;
            let t = l * (theta / 2.0).tan();
            samples[idx + 1] = (-t * t).exp() * (l * l + t * t);
        }
        samples.rotate_left(m);
        let mut out = [0.0; N_TERMS];
        for (j, o) in out.iter_mut().enumerate() {
            let freq = j + 1;
            // Exact integer phase reduction keeps the sum accurate.
            let sum: f64 = samples
                .iter()
                .enumerate()
                .map(|(n, s)| s * (2.0 * std::f64::consts::PI * ((freq * n) % m2) as f64 / m2 as f64).cos())
                .sum();
            *o = sum / m2 as f64;
        }
        out
    })
}

/// Weideman's expansion, valid for Im z ≥ 0.
fn w_upper(z: Complex64) -> Complex64 {
    let l = constant_l();
    let iz = Complex64::i() * z;
    let denom = Complex64::new(l, 0.0) - iz;
    let zz = (Complex64::new(l, 0.0) + iz) / denom;
    let p = coefficients().iter().rev().fold(Complex64::new(0.0, 0.0), |acc, &c| acc * zz + c);
    2.0 * p / (denom * denom) + 1.0 / (std::f64::consts::PI.sqrt() * denom)
}

/// The Faddeeva function w(z) = e^(−z²) erfc(−iz) for any complex z.
pub fn faddeeva(z: Complex64) -> Complex64 {
    if z.im >= 0.0 {
        w_upper(z)
    } else {
        2.0 * (-z * z).exp() - w_upper(-z)
    }
}

/// w(x) for real x: e^(−x²) + (2i/√π) Dawson(x), real part exact.
pub fn faddeeva_real(x: f64) -> Complex64 {
    Complex64::new((-x * x).exp(), w_upper(Complex64::new(x, 0.0)).im)
}

/// The plasma dispersion function Z(ζ) = i√π w(ζ) for real ζ.
pub fn plasma_z(zeta: f64) -> Complex64 {
    Complex64::i() * std::f64::consts::PI.sqrt() * faddeeva_real(zeta)
}

/// Dawson's integral F(x) = e^(−x²)∫₀ˣ e^(t²) dt by Rybicki's sum (an independent method, used to
/// check [`faddeeva`]): F(x) = π^(−1/2) Σ_{n odd} e^(−(x − nh)²)/n, error ~ e^(−(π/2h)²).
pub fn dawson_rybicki(x: f64, h: f64) -> f64 {
    let n_max = ((x.abs() + 40.0 * h.max(0.2) + 10.0) / h).ceil() as i64;
    let mut sum = 0.0;
    let mut n = -n_max - (n_max + 1) % 2;
    while n <= n_max {
        let d = x - n as f64 * h;
        sum += (-d * d).exp() / n as f64;
        n += 2;
    }
    sum / std::f64::consts::PI.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Complex64, b: Complex64, tol: f64) -> bool {
        (a - b).norm() <= tol * b.norm().max(1e-300)
    }

    #[test]
    #[allow(clippy::excessive_precision)] // reference values as published
    fn known_values() {
        // Reference values (Abramowitz & Stegun table 7.9; erfcx(y) = w(iy)).
        let cases = [
            (Complex64::new(1.0, 1.0), Complex64::new(0.304_744_205_256_912_6, 0.208_218_938_202_831_6)),
            (Complex64::new(0.0, 1.0), Complex64::new(0.427_583_576_155_807_0, 0.0)),
            (Complex64::new(0.0, 2.0), Complex64::new(0.255_395_676_310_505_7, 0.0)),
            (Complex64::new(1.0, 0.0), Complex64::new((-1.0f64).exp(), 2.0 / std::f64::consts::PI.sqrt() * 0.538_079_506_912_768_4)),
        ];
        for (z, w) in cases {
            let got = faddeeva(z);
            assert!(close(got, w, 1e-12), "w({z}) = {got}, expected {w}");
        }
        // Symmetry w(−z̄) = conj(w(z)) and the lower half plane.
        let z = Complex64::new(0.7, -0.4);
        let lower = faddeeva(z);
        let mirror = faddeeva(Complex64::new(-z.re, z.im)).conj();
        assert!(close(lower, mirror, 1e-12));
    }

    #[test]
    fn real_axis_matches_rybicki_dawson() {
        let mut worst = 0.0f64;
        for i in 0..=400 {
            let x = -10.0 + 0.05 * i as f64;
            let w = faddeeva(Complex64::new(x, 0.0));
            let dawson = dawson_rybicki(x, 0.1);
            let expected = 2.0 / std::f64::consts::PI.sqrt() * dawson;
            worst = worst.max((w.im - expected).abs() / expected.abs().max(1e-3));
            assert!((w.re - (-x * x).exp()).abs() < 1e-14);
        }
        assert!(worst < 1e-12, "worst relative error of Im w on the real axis {worst:e}");
    }

    #[test]
    fn plasma_z_asymptotics() {
        // Z(ζ) → −1/ζ − 1/(2ζ³) − 3/(4ζ⁵) − 15/(8ζ⁷) − 105/(16ζ⁹) for large real ζ; Z(0) = i√π.
        let z: f64 = 30.0;
        let asym = -1.0 / z - 1.0 / (2.0 * z.powi(3)) - 3.0 / (4.0 * z.powi(5)) - 15.0 / (8.0 * z.powi(7)) - 105.0 / (16.0 * z.powi(9));
        let rel = (plasma_z(z).re - asym).abs() / asym.abs();
        assert!(rel < 1e-12, "relative error {rel:e}");
        assert!((plasma_z(0.0) - Complex64::new(0.0, std::f64::consts::PI.sqrt())).norm() < 1e-15);
        // Z'(ζ) = −2(1 + ζZ): check by central differences.
        let (x, h) = (1.3, 1e-5);
        let deriv = (plasma_z(x + h) - plasma_z(x - h)) / (2.0 * h);
        assert!((deriv + 2.0 * (1.0 + x * plasma_z(x))).norm() < 1e-8);
    }
}
