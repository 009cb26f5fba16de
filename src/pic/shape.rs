//! B-spline particle shapes of order 1–4: node weights for deposit and interpolation, and the
//! particle form factor S(k) they imply.

/// Ghost nodes on each side of a padded grid: enough for the widest (quartic) stencil.
pub const PAD: usize = 2;

/// Node weights of the order-`ORDER` B-spline centred on `x` (in cell units, nodes at integers,
/// `x ≥ 0`). Returns the first node index and the `ORDER + 1` weights (rest zero). The weights
/// sum to 1 and their mean is `x`; for `ORDER ≥ 2` their variance is `(ORDER + 1)/12`.
#[inline(always)]
pub fn weights<const ORDER: usize>(x: f64) -> (isize, [f64; 5]) {
    match ORDER {
        1 => {
            let i = x as isize; // x ≥ 0: truncation is floor
            let d = x - i as f64;
            (i, [1.0 - d, d, 0.0, 0.0, 0.0])
        }
        2 => {
            let i = (x + 0.5) as isize; // nearest node
            let d = x - i as f64;
            let (l, r) = (0.5 - d, 0.5 + d);
            (i - 1, [0.5 * l * l, 0.75 - d * d, 0.5 * r * r, 0.0, 0.0])
        }
        3 => {
            let i = x as isize;
            let d = x - i as f64;
            let (d2, d3) = (d * d, d * d * d);
            let e = 1.0 - d;
            const SIXTH: f64 = 1.0 / 6.0;
            (
                i - 1,
                [
                    e * e * e * SIXTH,
                    (4.0 - 6.0 * d2 + 3.0 * d3) * SIXTH,
                    (1.0 + 3.0 * d + 3.0 * d2 - 3.0 * d3) * SIXTH,
                    d3 * SIXTH,
                    0.0,
                ],
            )
        }
        4 => {
            let i = (x + 0.5) as isize;
            let d = x - i as f64;
            let (d2, d3, d4) = (d * d, d * d * d, d * d * d * d);
            let (l, r) = (1.0 - 2.0 * d, 1.0 + 2.0 * d);
            (
                i - 2,
                [
                    l * l * l * l / 384.0,
                    (19.0 - 44.0 * d + 24.0 * d2 + 16.0 * d3 - 16.0 * d4) / 96.0,
                    (115.0 - 120.0 * d2 + 48.0 * d4) / 192.0,
                    (19.0 + 44.0 * d + 24.0 * d2 - 16.0 * d3 - 16.0 * d4) / 96.0,
                    r * r * r * r / 384.0,
                ],
            )
        }
        _ => unreachable!("shape order is validated to 1..=4"),
    }
}

/// `sin(x)/x`, 1 at 0.
pub fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-8 {
        1.0 - x * x / 6.0
    } else {
        x.sin() / x
    }
}

/// Form factor of one B-spline shape of order `order` on cells of size `dx`, with the optional
/// Gaussian of width `a`: `S(k) = [sinc(k_xΔx/2) sinc(k_yΔx/2)]^(order+1) · exp(−k²a²/2)`.
/// The interaction between two particles (deposit, solve, interpolate) carries `S(k)²`
/// (aliases neglected), the basis of the finite-size-particle theory (Birdsall & Langdon,
/// *Plasma Physics via Computer Simulation*, ch. 8 and 12; Langdon, Phys. Fluids 22, 163 (1979)).
pub fn form_factor(order: usize, dx: f64, gaussian_width: f64, kx: f64, ky: f64) -> f64 {
    let spline = (sinc(0.5 * kx * dx) * sinc(0.5 * ky * dx)).powi(order as i32 + 1);
    spline * (-0.5 * (kx * kx + ky * ky) * gaussian_width * gaussian_width).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<const O: usize>() {
        for step in 0..=100 {
            let x = 7.0 + step as f64 * 0.01;
            let (base, w) = weights::<O>(x);
            let sum: f64 = w.iter().sum();
            let mean: f64 = w.iter().enumerate().map(|(j, w)| w * (base + j as isize) as f64).sum();
            let var: f64 = w.iter().enumerate().map(|(j, w)| w * ((base + j as isize) as f64 - x).powi(2)).sum();
            assert!((sum - 1.0).abs() < 1e-14, "order {O} sum {sum}");
            assert!((mean - x).abs() < 1e-12, "order {O} x {x} mean {mean}");
            // Splines of order ≥ 2 reproduce quadratics: the sampled variance is constant.
            if O >= 2 {
                assert!((var - (O as f64 + 1.0) / 12.0).abs() < 1e-12, "order {O} var {var}");
            }
            assert!(w.iter().all(|&w| w >= 0.0));
            assert!(w[O + 1..].iter().all(|&w| w == 0.0));
        }
    }

    #[test]
    fn spline_moments() {
        check::<1>();
        check::<2>();
        check::<3>();
        check::<4>();
    }

    #[test]
    fn form_factor_is_fourier_transform_of_weights() {
        // Σ_j W(j − x) e^{−ik(j−x)} averaged over x equals S(k) for a B-spline (1D cut).
        let k = 0.9;
        for order in 1..=4 {
            let mut acc = 0.0;
            let n = 400;
            for s in 0..n {
                let x = 3.0 + (s as f64 + 0.5) / n as f64;
                let (base, w) = match order {
                    1 => weights::<1>(x),
                    2 => weights::<2>(x),
                    3 => weights::<3>(x),
                    _ => weights::<4>(x),
                };
                // Continuous transform of the shape: the weights sample it at the nodes; the
                // x-average of the sampled transform picks the k-component of the continuous one.
                acc += w.iter().enumerate().map(|(j, w)| w * (k * ((base + j as isize) as f64 - x)).cos()).sum::<f64>();
            }
            acc /= n as f64;
            let sk = form_factor(order, 1.0, 0.0, k, 0.0);
            assert!((acc - sk).abs() < 1e-4, "order {order}: {acc} vs {sk}");
        }
    }
}
