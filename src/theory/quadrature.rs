//! Deterministic globally adaptive Gauss–Kronrod (G7–K15) quadrature of vector-valued integrands.
//!
//! The interval is split at the caller's breakpoints; the sub-interval with the largest error
//! estimate is bisected until the summed error is below `max(abs, rel·max_c |I_c|)` or the
//! interval budget is spent. Evaluation order depends only on the inputs, so results are
//! bitwise reproducible.

/// Kronrod nodes (positive half, descending; the last is the centre).
#[allow(clippy::excessive_precision)] // published to 36 digits; rounded by the compiler
const XK: [f64; 8] = [
    0.991_455_371_120_812_639_206_854_697_526_329,
    0.949_107_912_342_758_524_526_189_684_047_851,
    0.864_864_423_359_769_072_789_712_788_640_926,
    0.741_531_185_599_394_439_863_864_773_280_788,
    0.586_087_235_467_691_130_294_144_845_693_013,
    0.405_845_151_377_397_166_906_606_412_076_961,
    0.207_784_955_007_898_467_600_689_403_773_245,
    0.0,
];
/// Kronrod weights matching [`XK`].
#[allow(clippy::excessive_precision)] // published to 36 digits; rounded by the compiler
const WK: [f64; 8] = [
    0.022_935_322_010_529_224_963_732_008_058_970,
    0.063_092_092_629_978_553_290_700_663_189_204,
    0.104_790_010_322_250_183_839_876_322_541_518,
    0.140_653_259_715_525_918_745_189_590_510_238,
    0.169_004_726_639_267_902_826_583_426_598_550,
    0.190_350_578_064_785_409_913_256_402_421_014,
    0.204_432_940_075_298_892_414_161_999_234_649,
    0.209_482_141_084_727_828_012_999_174_891_714,
];
/// Gauss weights of the 7-point rule, at Kronrod nodes 1, 3, 5 and the centre.
#[allow(clippy::excessive_precision)] // published to 36 digits; rounded by the compiler
const WG: [f64; 4] = [
    0.129_484_966_168_869_693_270_611_432_679_082,
    0.279_705_391_489_276_667_901_467_771_423_780,
    0.381_830_050_505_118_944_950_369_775_488_975,
    0.417_959_183_673_469_387_755_102_040_816_327,
];

/// Accuracy goal and budget of an adaptive integration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub rel: f64,
    pub abs: f64,
    /// Largest number of sub-intervals.
    pub max_intervals: usize,
}

impl Default for Tolerance {
    fn default() -> Self {
        Self { rel: 1e-10, abs: 1e-300, max_intervals: 2000 }
    }
}

/// An integral, its error estimate and the number of integrand evaluations spent.
#[derive(Clone, Copy, Debug)]
pub struct Integral<const N: usize> {
    pub value: [f64; N],
    pub error: f64,
    pub evals: usize,
    /// Whether the tolerance was met within the interval budget.
    pub converged: bool,
}

struct Piece<const N: usize> {
    a: f64,
    b: f64,
    value: [f64; N],
    error: f64,
}

fn kronrod<const N: usize>(f: &mut impl FnMut(f64) -> [f64; N], a: f64, b: f64) -> Piece<N> {
    let centre = 0.5 * (a + b);
    let half = 0.5 * (b - a);
    let mut k = [0.0; N];
    let mut g = [0.0; N];
    let fc = f(centre);
    for c in 0..N {
        k[c] = WK[7] * fc[c];
        g[c] = WG[3] * fc[c];
    }
    for (j, (&x, &w)) in XK[..7].iter().zip(&WK[..7]).enumerate() {
        let lo = f(centre - half * x);
        let hi = f(centre + half * x);
        for c in 0..N {
            let s = lo[c] + hi[c];
            k[c] += w * s;
            if j % 2 == 1 {
                g[c] += WG[j / 2] * s;
            }
        }
    }
    let mut error = 0.0f64;
    let mut value = [0.0; N];
    for c in 0..N {
        value[c] = k[c] * half;
        error = error.max(((k[c] - g[c]) * half).abs());
    }
    Piece { a, b, value, error }
}

/// ∫ f over `[points[0], points.last()]`, split at every point (sorted ascending, at least two).
pub fn integrate<const N: usize>(mut f: impl FnMut(f64) -> [f64; N], points: &[f64], tol: Tolerance) -> Integral<N> {
    let mut pieces: Vec<Piece<N>> = points.windows(2).filter(|w| w[1] > w[0]).map(|w| kronrod(&mut f, w[0], w[1])).collect();
    let mut evals = 15 * pieces.len();
    loop {
        let mut value = [0.0; N];
        let mut error = 0.0;
        for p in &pieces {
            for (v, pv) in value.iter_mut().zip(&p.value) {
                *v += pv;
            }
            error += p.error;
        }
        let scale = value.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let goal = tol.abs.max(tol.rel * scale);
        let worst = pieces.iter().enumerate().max_by(|x, y| x.1.error.total_cmp(&y.1.error)).map(|(i, _)| i);
        let done = error <= goal || !error.is_finite();
        let Some(worst) = worst.filter(|_| !done && pieces.len() < tol.max_intervals) else {
            return Integral { value, error, evals, converged: error <= goal };
        };
        let Piece { a, b, .. } = pieces.swap_remove(worst);
        let mid = 0.5 * (a + b);
        if !(mid > a && mid < b) {
            // Interval at f64 resolution: nothing left to refine.
            return Integral { value, error, evals, converged: false };
        }
        pieces.push(kronrod(&mut f, a, mid));
        pieces.push(kronrod(&mut f, mid, b));
        evals += 30;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomials_and_peaks() {
        // G7–K15 is exact for degree-22 polynomials on one interval.
        let r = integrate(|x| [x.powi(21), x.powi(2)], &[0.0, 2.0], Tolerance::default());
        assert!((r.value[0] - 2f64.powi(22) / 22.0).abs() < 1e-9);
        assert!((r.value[1] - 8.0 / 3.0).abs() < 1e-14);
        // A narrow Lorentzian at a breakpoint: ∫ w/(x² + w²) over [−1, 1] = 2 atan(1/w).
        let w = 1e-6;
        let r = integrate(|x| [w / (x * x + w * w)], &[-1.0, 0.0, 1.0], Tolerance::default());
        assert!(r.converged);
        assert!((r.value[0] - 2.0 * (1.0 / w).atan()).abs() < 1e-9, "{:?}", r.value);
    }
}
