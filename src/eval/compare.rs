//! Agreement of radial profiles with the kinetic theory: the numbers behind `colop compare`'s
//! "radial profiles against the theory" table.

use crate::plot::figures::Profile;
use std::path::Path;

/// Deviation of one radial profile from the theory over a speed window: relative L2 over the
/// profile's own nodes in the window, and the largest |value/theory − 1| there.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Agreement {
    pub rel_l2: f64,
    pub max_rel: f64,
    pub nodes: usize,
}

/// The coefficients judged, in the order of [`theory_agreement`]'s rows.
pub const COEFFICIENTS: [&str; 3] = ["A_par", "D_par", "D_perp"];

/// Agreement of `(v, values)` with the theory curve `(tv, tvalues)` (interpolated linearly) over
/// `window`; nodes with a non-finite value (empty track bins) are skipped.
pub fn agreement(v: &[f64], values: &[f64], tv: &[f64], tvalues: &[f64], window: [f64; 2]) -> Agreement {
    let (mut num, mut den, mut max_rel, mut nodes) = (0.0, 0.0, 0.0f64, 0);
    for (&x, &y) in v.iter().zip(values) {
        if x < window[0] || x > window[1] || !y.is_finite() {
            continue;
        }
        let t = crate::theory::output::interpolate(tv, tvalues, x);
        num += (y - t).powi(2);
        den += t * t;
        if t != 0.0 {
            max_rel = max_rel.max((y / t - 1.0).abs());
        }
        nodes += 1;
    }
    let rel_l2 = if den > 0.0 { (num / den).sqrt() } else { f64::NAN };
    Agreement { rel_l2, max_rel: if nodes > 0 { max_rel } else { f64::NAN }, nodes }
}

/// Every profile's agreement with `theory` (A_par, D_par, D_perp, as [`COEFFICIENTS`]); the
/// theory's own profile (labelled `theory`) is skipped.
pub fn theory_agreement(profiles: &[Profile], theory: &Profile, window: [f64; 2]) -> Vec<(String, [Agreement; 3])> {
    let (_, tv, ta, tp, tq) = theory;
    profiles
        .iter()
        .filter(|p| p.0 != "theory")
        .map(|(label, v, a, dp, dq)| {
            (label.clone(), [agreement(v, a, tv, ta, window), agreement(v, dp, tv, tp, window), agreement(v, dq, tv, tq, window)])
        })
        .collect()
}

/// The theory's radial curve: `coefficients.csv` of a `colop theory` directory (fine grid), else
/// `fallback` (the profile exported by its model).
pub fn theory_curve(dir: &Path, fallback: Option<&Profile>) -> anyhow::Result<Option<Profile>> {
    let csv = dir.join("coefficients.csv");
    if !csv.is_file() {
        return Ok(fallback.cloned());
    }
    let [v, a, dp, dq] = crate::theory::output::read_csv(&csv)?;
    Ok(Some(("theory".into(), v, a, dp, dq)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_is_judged_inside_the_window_only() {
        let tv = [0.0, 1.0, 2.0, 3.0, 4.0];
        let tq = [1.0, 1.0, 1.0, 1.0, 1.0];
        // 10% high inside [0.5, 3], wildly off outside, one empty bin inside.
        let v = [0.25, 1.0, 2.0, 2.5, 3.5];
        let q = [9.0, 1.1, 1.1, f64::NAN, -5.0];
        let a = agreement(&v, &q, &tv, &tq, [0.5, 3.0]);
        assert_eq!(a.nodes, 2);
        assert!((a.rel_l2 - 0.1).abs() < 1e-12 && (a.max_rel - 0.1).abs() < 1e-12, "{a:?}");
        let none = agreement(&v, &q, &tv, &tq, [5.0, 6.0]);
        assert_eq!(none.nodes, 0);
        assert!(none.rel_l2.is_nan() && none.max_rel.is_nan());
    }
}
