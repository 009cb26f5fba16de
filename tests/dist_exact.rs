//! Property tests of the exact, order-independent sum: permuted and regrouped additions give
//! bitwise-identical results, equal to a correctly rounded reference (Shewchuk's exact
//! floating-point expansion sum, as in Python's `math.fsum`) within the documented guarantee.

use colop::dist::ExactSum;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Correctly rounded sum of `xs` (Shewchuk's algorithm with the half-even correction of CPython's
/// `math.fsum`). Valid when no partial sum overflows.
fn fsum(xs: &[f64]) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    for &x0 in xs {
        let mut x = x0;
        let mut i = 0;
        for j in 0..partials.len() {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        partials.truncate(i);
        partials.push(x);
    }
    let mut n = partials.len();
    if n == 0 {
        return 0.0;
    }
    n -= 1;
    let mut hi = partials[n];
    let mut lo = 0.0;
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = partials[n];
        hi = x + y;
        let yr = hi - x;
        lo = y - yr;
        if lo != 0.0 {
            break;
        }
    }
    if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        if y == x - hi {
            hi = x;
        }
    }
    hi
}

/// Position of the leading bit of a finite non-zero |x| in units of 2^-1074.
fn lead_pos(x: f64) -> i64 {
    let bits = x.abs().to_bits();
    let exponent = (bits >> 52) as i64;
    if exponent == 0 {
        63 - bits.leading_zeros() as i64
    } else {
        exponent - 1 + 52
    }
}

/// `x` with its bits below position `bottom` (units of 2^-1074) cleared, toward zero.
fn truncate(x: f64, bottom: i64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64;
    let low = if exponent == 0 { 0 } else { exponent - 1 };
    let drop = bottom - low;
    if drop <= 0 {
        x
    } else if drop >= 53 {
        0.0 * x.signum()
    } else {
        f64::from_bits(bits & !((1u64 << drop) - 1))
    }
}

/// The documented result: every addend truncated below the window of the element's maximum,
/// then summed exactly and rounded to nearest.
fn reference(column: &[f64]) -> f64 {
    let max = column.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return 0.0;
    }
    let bottom = 32 * (lead_pos(max) / 32 - 3);
    let truncated: Vec<f64> = column.iter().map(|&x| truncate(x, bottom)).collect();
    fsum(&truncated) + 0.0 // −0 → +0, as ExactSum
}

/// A random value: mantissa uniform, exponent uniform over ±`span` decades around `scale`.
fn wild(rng: &mut impl Rng, scale: f64, span: f64) -> f64 {
    let sign = if rng.gen_bool(0.5) { -1.0 } else { 1.0 };
    sign * scale * 10f64.powf(rng.gen_range(-span..span)) * rng.gen_range(1.0..2.0)
}

/// `count` vectors of `len` elements; each element has its own scale and spread, and a share of
/// the values come in cancelling pairs (x, −x) and near-cancelling pairs (x, −x(1 + 2^-40)).
fn make_vectors(rng: &mut impl Rng, len: usize, count: usize, span: f64, with_subnormals: bool) -> Vec<Vec<f64>> {
    let scales: Vec<f64> = (0..len).map(|_| 10f64.powf(rng.gen_range(-250.0..250.0))).collect();
    let mut vectors: Vec<Vec<f64>> = Vec::new();
    while vectors.len() < count {
        let v: Vec<f64> = scales
            .iter()
            .map(|&s| {
                let r: f64 = rng.gen();
                if r < 0.05 {
                    0.0
                } else if with_subnormals && r < 0.15 {
                    f64::from_bits(rng.gen_range(1..1u64 << 52)) * if rng.gen_bool(0.5) { -1.0 } else { 1.0 }
                } else {
                    wild(rng, s, span)
                }
            })
            .collect();
        if vectors.len() + 2 <= count && rng.gen_bool(0.3) {
            let near: Vec<f64> = v.iter().map(|x| -x * (1.0 + 2f64.powi(-40))).collect();
            let exact: Vec<f64> = v.iter().map(|x| -x).collect();
            vectors.push(v);
            vectors.push(if rng.gen_bool(0.5) { near } else { exact });
        } else {
            vectors.push(v);
        }
    }
    vectors
}

fn column(vectors: &[Vec<f64>], i: usize) -> Vec<f64> {
    vectors.iter().map(|v| v[i]).collect()
}

fn accumulate(vectors: &[Vec<f64>], len: usize) -> ExactSum {
    let mut acc = ExactSum::new(len);
    for v in vectors {
        acc.add(v);
    }
    acc
}

/// Sum in a random order, split into random groups, merged in a random order.
fn accumulate_shuffled(rng: &mut impl Rng, vectors: &[Vec<f64>], len: usize) -> ExactSum {
    let mut order: Vec<usize> = (0..vectors.len()).collect();
    order.shuffle(rng);
    let groups = rng.gen_range(1..=6);
    let mut parts: Vec<ExactSum> = (0..groups).map(|_| ExactSum::new(len)).collect();
    for k in order {
        let g = rng.gen_range(0..groups);
        parts[g].add(&vectors[k]);
    }
    parts.shuffle(rng);
    let mut total = parts.pop().unwrap();
    for p in &parts {
        total.merge(p);
    }
    total
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn order_and_grouping_do_not_change_a_bit() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for trial in 0..40 {
        let len = rng.gen_range(1..40);
        let count = rng.gen_range(1..60);
        let span = [1.0, 10.0, 100.0, 300.0][trial % 4];
        let vectors = make_vectors(&mut rng, len, count, span, trial % 3 == 0);
        let straight = accumulate(&vectors, len);
        for _ in 0..5 {
            let shuffled = accumulate_shuffled(&mut rng, &vectors, len);
            assert_eq!(bits(&shuffled.to_f64()), bits(&straight.to_f64()), "trial {trial}");
            assert_eq!(shuffled, straight, "internal state differs, trial {trial}");
        }
    }
}

#[test]
fn equals_correctly_rounded_exact_sum_within_window() {
    // Spread of 10 decades (< 2^43) per element: nothing is truncated, so the result is the
    // correctly rounded exact sum.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for trial in 0..60 {
        let len = rng.gen_range(1..30);
        let count = rng.gen_range(1..80);
        let vectors = make_vectors(&mut rng, len, count, 6.0, false);
        let got = accumulate_shuffled(&mut rng, &vectors, len).to_f64();
        for (i, value) in got.iter().enumerate() {
            let exact = fsum(&column(&vectors, i)) + 0.0;
            assert_eq!(value.to_bits(), exact.to_bits(), "trial {trial} element {i}: {value} vs {exact}");
        }
    }
}

#[test]
fn wild_magnitudes_match_the_documented_truncation() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for trial in 0..60 {
        let len = rng.gen_range(1..30);
        let count = rng.gen_range(1..80);
        let vectors = make_vectors(&mut rng, len, count, 60.0, trial % 2 == 0);
        let got = accumulate_shuffled(&mut rng, &vectors, len).to_f64();
        for (i, &value) in got.iter().enumerate() {
            let col = column(&vectors, i);
            let expected = reference(&col);
            assert_eq!(value.to_bits(), expected.to_bits(), "trial {trial} element {i}: {value} vs {expected}");
            // And the guarantee in absolute terms: |S' − S| < n·2^-96·max|x| (+ rounding).
            let exact = fsum(&col);
            let max = col.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let bound = col.len() as f64 * max * 2f64.powi(-96) + exact.abs() * f64::EPSILON;
            assert!((value - exact).abs() <= bound, "trial {trial} element {i}");
        }
    }
}

#[test]
fn cancellation_to_tiny_result_is_exact() {
    // Large terms cancel exactly, leaving a result 2^-40 of the largest term.
    let xs = [1e10, 3.0e-2, -1e10, 7.0e-3, 5.0e9, -5.0e9, -1e-2];
    let mut acc = ExactSum::new(1);
    for x in xs {
        acc.add(&[x]);
    }
    assert_eq!(acc.to_f64()[0], fsum(&xs));
}

#[test]
fn long_vectors_convert_like_single_elements() {
    // Long enough for the parallel conversion; pairs within 2³⁰ of each other (so the sum is
    // exact in the window), cancelling pairs, and subnormals.
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let len = 3 * 4096 + 17;
    let a: Vec<f64> = (0..len)
        .map(|_| {
            let scale = 10f64.powf(rng.gen_range(-300.0..300.0));
            wild(&mut rng, scale, 1.0)
        })
        .collect();
    let b: Vec<f64> = a
        .iter()
        .enumerate()
        .map(|(i, &x)| match i % 5 {
            0 => -x,
            1 => f64::MIN_POSITIVE * rng.gen_range(-1.0..1.0),
            _ => x * 2f64.powi(rng.gen_range(-30..30)) * rng.gen_range(-1.0..1.0),
        })
        .collect();
    let a: Vec<f64> = a.iter().enumerate().map(|(i, &x)| if i % 5 == 1 { f64::MIN_POSITIVE * 0.37 } else { x }).collect();
    let mut acc = ExactSum::new(len);
    acc.add(&a);
    acc.add(&b);
    let got = acc.to_f64();
    for i in 0..len {
        let mut one = ExactSum::new(1);
        one.add(&[a[i]]);
        one.add(&[b[i]]);
        let single = one.to_f64()[0];
        // Two addends: IEEE addition is correctly rounded too (a zero sum is +0 in both).
        assert_eq!(got[i].to_bits(), single.to_bits(), "element {i}: {} + {}", a[i], b[i]);
        assert_eq!(got[i].to_bits(), (a[i] + b[i]).to_bits(), "element {i}: {} + {}", a[i], b[i]);
    }
}
