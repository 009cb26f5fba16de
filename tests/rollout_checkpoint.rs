//! Checkpoint schedules (optimality, slot bound, reversal order) and checkpointed adjoint rollouts
//! (finite-difference gradients, bitwise equality across schedules) on a toy nonlinear scheme.

use colop::grid::VelocityGrid;
use colop::operator::Fields;
use colop::solver::checkpoint::{min_advances, min_forward_steps, Action, Schedule};
use colop::solver::rollout::{forward, gradient, RolloutWorkspace};
use colop::solver::{Scheme, StepWorkspace};
use ndarray::{ArrayView3, ArrayViewMut3};
use std::sync::atomic::{AtomicU64, Ordering};

/// Walks a schedule like an executor would, checking every action; returns (advances, peak live).
fn simulate(schedule: &Schedule, n: usize, s: usize) -> (u64, usize) {
    let mut slots: Vec<Option<usize>> = vec![None; s];
    let mut current = 0usize;
    let mut next_adjoint = n; // adjoints must come as n−1, n−2, …, 0
    let (mut advances, mut live, mut peak) = (0u64, 0usize, 0usize);
    for a in schedule.actions() {
        match *a {
            Action::Advance { from, to } => {
                assert_eq!(from, current, "advance from a state that is not current");
                assert!(to > from && to < n, "advance {from}→{to} out of range");
                // An advance never passes a state whose adjoint is already done.
                assert!(to < next_adjoint, "advance to {to} after adjoint {next_adjoint}");
                advances += (to - from) as u64;
                current = to;
            }
            Action::Store { slot, step } => {
                assert!(slot < s, "slot {slot} ≥ {s}");
                assert!(slots[slot].is_none(), "store into live slot");
                assert_eq!(step, current);
                slots[slot] = Some(step);
                live += 1;
                peak = peak.max(live);
                assert!(live <= s);
            }
            Action::Restore { slot, step } => {
                assert_eq!(slots[slot], Some(step), "restore of a state the slot does not hold");
                current = step;
            }
            Action::Free { slot } => {
                assert!(slots[slot].is_some());
                slots[slot] = None;
                live -= 1;
            }
            Action::Adjoint { step } => {
                assert_eq!(step + 1, next_adjoint, "adjoint out of order");
                assert_eq!(step, current, "adjoint input state not current");
                next_adjoint = step;
            }
        }
    }
    assert_eq!(next_adjoint, 0, "not every adjoint step visited");
    assert_eq!(live, 0, "slots left occupied");
    (advances, peak)
}

#[test]
fn schedule_is_optimal_bounded_and_reverses_in_order() {
    let ns = [1usize, 2, 3, 4, 5, 7, 10, 17, 50, 100, 333, 1000, 1900, 2000];
    for &n in &ns {
        let mut ss = vec![1usize, 2, 3, 4, 5, 10, 25];
        ss.extend([n.saturating_sub(2).max(1), n.saturating_sub(1).max(1), n, n + 5]);
        for &s in &ss {
            let schedule = Schedule::binomial(n, s);
            let (advances, peak) = simulate(&schedule, n, s);
            assert_eq!(advances, min_advances(n, s), "n = {n}, s = {s}");
            assert_eq!(schedule.advances(), advances);
            assert!(peak <= s, "n = {n}, s = {s}: peak {peak}");
            assert_eq!(schedule.peak_slots(), peak);
        }
        let all = Schedule::store_all(n);
        let (advances, _) = simulate(&all, n, all.slots());
        assert_eq!(advances, n.saturating_sub(1) as u64, "store-all recomputes nothing");
    }
    // Spot values of the closed form: β(10, 5) = 3003 ≥ 1900 > β(10, 4) = 1001, so r = 5 and
    // t = 5·1900 − β(11, 4) = 9500 − 1365.
    assert_eq!(min_advances(1900, 10), 9500 - 1365);
    assert_eq!(min_advances(2000, 1), 2000 * 1999 / 2);
}

#[test]
fn closed_form_matches_dynamic_programme() {
    // T(l, s): least advances to reverse l steps from a held state with s slots (held included).
    const L: usize = 60;
    const S: usize = 6;
    let mut t = vec![vec![0u64; S + 1]; L + 1];
    for l in 2..=L {
        t[l][1] = (l * (l - 1) / 2) as u64;
        for s in 2..=S {
            t[l][s] = (1..l).map(|j| j as u64 + t[l - j][s - 1] + t[j][s]).min().unwrap();
        }
    }
    for (l, row) in t.iter().enumerate().skip(1) {
        for (s, &best) in row.iter().enumerate().skip(1) {
            assert_eq!(min_advances(l, s), best, "l = {l}, s = {s}");
        }
    }
}

/// Toy nonlinear explicit step on an nx×ny grid with zero guard cells:
/// `out = f + D·Δf − A·f·δ_x f` (δ_x the central difference), prepared = h·(A, D).
struct Toy {
    grid: VelocityGrid,
    steps: AtomicU64,
}

impl Toy {
    fn new(nx: usize, ny: usize) -> Self {
        Self { grid: VelocityGrid::new(nx, ny, [-1.0, 1.0, -1.0, 1.0], "v_th").unwrap(), steps: AtomicU64::new(0) }
    }
    fn at(&self, f: &[f64], i: isize, j: isize) -> f64 {
        let (nx, ny) = (self.grid.nx as isize, self.grid.ny as isize);
        if i < 0 || j < 0 || i >= nx || j >= ny {
            0.0
        } else {
            f[(i * ny + j) as usize]
        }
    }
}

impl Scheme for Toy {
    fn name(&self) -> &'static str {
        "toy"
    }
    fn grid(&self) -> &VelocityGrid {
        &self.grid
    }
    fn n_fields(&self) -> usize {
        2
    }
    fn n_prepared(&self) -> usize {
        2
    }
    fn substeps(&self, _coeffs: ArrayView3<f64>, _dt: f64) -> usize {
        1
    }
    fn prepare(&self, coeffs: ArrayView3<f64>, h: f64, mut out: ArrayViewMut3<f64>) {
        out.assign(&(&coeffs * h));
    }
    fn prepare_vjp(
        &self,
        _coeffs: ArrayView3<f64>,
        h: f64,
        d_prepared: ArrayView3<f64>,
        mut d_coeffs: ArrayViewMut3<f64>,
    ) {
        d_coeffs.scaled_add(h, &d_prepared);
    }
    fn workspace(&self) -> StepWorkspace {
        StepWorkspace::default()
    }
    fn step(&self, p: &Fields, f: &[f64], out: &mut [f64], _ws: &mut StepWorkspace) {
        self.steps.fetch_add(1, Ordering::Relaxed);
        let ny = self.grid.ny;
        for i in 0..self.grid.nx {
            for j in 0..ny {
                let (ii, jj) = (i as isize, j as isize);
                let c = f[i * ny + j];
                let lap =
                    self.at(f, ii + 1, jj) + self.at(f, ii - 1, jj) + self.at(f, ii, jj + 1) + self.at(f, ii, jj - 1)
                        - 4.0 * c;
                let dx = 0.5 * (self.at(f, ii + 1, jj) - self.at(f, ii - 1, jj));
                out[i * ny + j] = c + p[[1, i, j]] * lap - p[[0, i, j]] * c * dx;
            }
        }
    }
    fn step_vjp(
        &self,
        p: &Fields,
        f: &[f64],
        lam_out: &[f64],
        lam_in: &mut [f64],
        d_p: &mut Fields,
        _ws: &mut StepWorkspace,
    ) {
        let (nx, ny) = (self.grid.nx, self.grid.ny);
        lam_in.fill(0.0);
        for i in 0..nx {
            for j in 0..ny {
                let (ii, jj) = (i as isize, j as isize);
                let l = lam_out[i * ny + j];
                let c = f[i * ny + j];
                let (a, d) = (p[[0, i, j]], p[[1, i, j]]);
                let lap =
                    self.at(f, ii + 1, jj) + self.at(f, ii - 1, jj) + self.at(f, ii, jj + 1) + self.at(f, ii, jj - 1)
                        - 4.0 * c;
                let dx = 0.5 * (self.at(f, ii + 1, jj) - self.at(f, ii - 1, jj));
                d_p[[0, i, j]] -= l * c * dx;
                d_p[[1, i, j]] += l * lap;
                lam_in[i * ny + j] += l * (1.0 - 4.0 * d - a * dx);
                let mut add = |i2: isize, j2: isize, w: f64| {
                    if i2 >= 0 && j2 >= 0 && (i2 as usize) < nx && (j2 as usize) < ny {
                        lam_in[i2 as usize * ny + j2 as usize] += l * w;
                    }
                };
                add(ii + 1, jj, d - 0.5 * a * c);
                add(ii - 1, jj, d + 0.5 * a * c);
                add(ii, jj + 1, d);
                add(ii, jj - 1, d);
            }
        }
    }
}

/// A deterministic pseudo-random value in [0, 1) from an index.
fn hash01(i: usize, salt: u64) -> f64 {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

struct Problem {
    toy: Toy,
    h: f64,
    substeps: usize,
    /// Physical coefficients per distinct slot.
    coeffs: Vec<Fields>,
    grad_slot: Vec<usize>,
    f0: Vec<f64>,
    targets: Vec<Vec<f64>>,
}

impl Problem {
    fn new(nx: usize, ny: usize, k: usize, substeps: usize) -> Self {
        let toy = Toy::new(nx, ny);
        let n = nx * ny;
        let coeffs = (0..2)
            .map(|s| {
                Fields::from_shape_fn((2, nx, ny), |(c, i, j)| {
                    let r = hash01(i * ny + j, 10 + s as u64 * 2 + c as u64);
                    if c == 0 {
                        0.5 + r
                    } else {
                        0.5 + 0.5 * r
                    }
                })
            })
            .collect();
        let grad_slot = (0..k).map(|i| i % 2).collect();
        let f0 = (0..n).map(|i| 0.2 + hash01(i, 1)).collect();
        let targets = (0..k).map(|s| (0..n).map(|i| 0.5 * hash01(i, 100 + s as u64)).collect()).collect();
        Self { toy, h: 0.04, substeps, coeffs, grad_slot, f0, targets }
    }

    fn prepared(&self) -> Vec<Fields> {
        self.coeffs
            .iter()
            .map(|c| {
                let mut p = Fields::zeros(c.raw_dim());
                self.toy.prepare(c.view(), self.h, p.view_mut());
                p
            })
            .collect()
    }

    fn weight(k: usize) -> f64 {
        1.0 + 0.25 * k as f64
    }

    /// Loss by a plain forward rollout.
    fn loss(&self, coeffs: &[Fields], f0: &[f64]) -> f64 {
        let prepared: Vec<Fields> = coeffs
            .iter()
            .map(|c| {
                let mut p = Fields::zeros(c.raw_dim());
                self.toy.prepare(c.view(), self.h, p.view_mut());
                p
            })
            .collect();
        let per_interval: Vec<&Fields> = self.grad_slot.iter().map(|&s| &prepared[s]).collect();
        let mut ws = RolloutWorkspace::new(&self.toy);
        let mut total = 0.0;
        forward(&self.toy, &per_interval, self.substeps, f0, &mut ws, |k, f| {
            let t = &self.targets[k - 1];
            total += Self::weight(k) * 0.5 * f.iter().zip(t).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
        });
        total
    }

    /// Adjoint rollout with `schedule`: (loss, d_coeffs, d_f0, stats, snapshot order).
    #[allow(clippy::type_complexity)]
    fn gradient(
        &self,
        schedule: &Schedule,
        ws: &mut RolloutWorkspace,
    ) -> (f64, Vec<Fields>, Vec<f64>, colop::solver::rollout::RolloutStats, Vec<(usize, Vec<f64>)>) {
        let prepared = self.prepared();
        let per_interval: Vec<&Fields> = self.grad_slot.iter().map(|&s| &prepared[s]).collect();
        let mut d_prepared: Vec<Fields> = prepared.iter().map(|p| Fields::zeros(p.raw_dim())).collect();
        let mut seen = Vec::new();
        let stats = gradient(
            &self.toy,
            &per_interval,
            &self.grad_slot,
            &mut d_prepared,
            self.substeps,
            &self.f0,
            schedule,
            ws,
            |k, f, lam| {
                seen.push((k, f.to_vec()));
                let t = &self.targets[k - 1];
                let w = Self::weight(k);
                let mut l = 0.0;
                for ((lam, a), b) in lam.iter_mut().zip(f).zip(t) {
                    *lam += w * (a - b);
                    l += (a - b) * (a - b);
                }
                w * 0.5 * l
            },
        );
        let d_coeffs = self
            .coeffs
            .iter()
            .zip(&d_prepared)
            .map(|(c, dp)| {
                let mut d = Fields::zeros(c.raw_dim());
                self.toy.prepare_vjp(c.view(), self.h, dp.view(), d.view_mut());
                d
            })
            .collect();
        (stats.loss, d_coeffs, ws.d_initial().to_vec(), stats, seen)
    }
}

#[test]
fn rollout_gradient_matches_finite_differences() {
    let p = Problem::new(6, 5, 4, 3);
    let mut ws = RolloutWorkspace::new(&p.toy);
    let (loss, d_coeffs, d_f0, _, _) = p.gradient(&Schedule::binomial(12, 3), &mut ws);
    assert!((loss - p.loss(&p.coeffs, &p.f0)).abs() <= 1e-13 * loss.abs());
    let eps = 1e-6;
    let mut worst: f64 = 0.0;
    let mut check = |analytic: f64, plus: f64, minus: f64| {
        let fd = (plus - minus) / (2.0 * eps);
        let err = (fd - analytic).abs() / analytic.abs().max(1e-3);
        worst = worst.max(err);
    };
    for s in 0..2 {
        for idx in [(0usize, 0usize, 0usize), (0, 2, 3), (1, 1, 1), (1, 5, 4), (0, 3, 0)] {
            let mut cp = p.coeffs.clone();
            cp[s][idx] += eps;
            let plus = p.loss(&cp, &p.f0);
            cp[s][idx] -= 2.0 * eps;
            let minus = p.loss(&cp, &p.f0);
            check(d_coeffs[s][idx], plus, minus);
        }
    }
    for i in [0usize, 7, 14, 29] {
        let mut f = p.f0.clone();
        f[i] += eps;
        let plus = p.loss(&p.coeffs, &f);
        f[i] -= 2.0 * eps;
        let minus = p.loss(&p.coeffs, &f);
        check(d_f0[i], plus, minus);
    }
    eprintln!("rollout gradient vs central differences: worst relative error {worst:e}");
    assert!(worst < 1e-6, "worst relative error {worst:e}");
}

#[test]
fn gradients_are_bitwise_identical_across_schedules() {
    let (k, substeps) = (5, 4);
    let n = k * substeps;
    let p = Problem::new(7, 6, k, substeps);
    let mut ws = RolloutWorkspace::new(&p.toy);
    let reference = p.gradient(&Schedule::store_all(n), &mut ws);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut observed = Vec::new();
    let prepared = p.prepared();
    let per_interval: Vec<&Fields> = p.grad_slot.iter().map(|&s| &prepared[s]).collect();
    forward(&p.toy, &per_interval, substeps, &p.f0, &mut ws, |k, f| observed.push((k, f.to_vec())));
    assert_eq!(observed.iter().map(|o| o.0).collect::<Vec<_>>(), (1..=k).collect::<Vec<_>>());
    for s in (1..=n + 2).chain([1000]) {
        let schedule = Schedule::binomial(n, s);
        // A fresh workspace per schedule, so allocated slots count this schedule only.
        let mut ws = RolloutWorkspace::new(&p.toy);
        let before = p.toy.steps.load(Ordering::Relaxed);
        let (loss, d_coeffs, d_f0, stats, seen) = p.gradient(&schedule, &mut ws);
        let evaluated = p.toy.steps.load(Ordering::Relaxed) - before;
        assert_eq!(loss.to_bits(), reference.0.to_bits(), "s = {s}");
        for (a, b) in d_coeffs.iter().zip(&reference.1) {
            assert_eq!(bits(a.as_slice().unwrap()), bits(b.as_slice().unwrap()), "s = {s}");
        }
        assert_eq!(bits(&d_f0), bits(&reference.2), "s = {s}");
        // Loss callback: once per snapshot, K down to 1, with the forward rollout's states.
        assert_eq!(seen.iter().map(|x| x.0).collect::<Vec<_>>(), (1..=k).rev().collect::<Vec<_>>());
        for (kk, f) in &seen {
            assert_eq!(bits(f), bits(&observed[kk - 1].1), "s = {s}, snapshot {kk}");
        }
        // Work and memory: the binomial optimum, counted by the scheme itself; at most s states.
        assert_eq!(evaluated, min_forward_steps(n, s), "s = {s}");
        assert_eq!(stats.forward_steps, evaluated);
        assert_eq!(stats.recomputed_steps, evaluated - n as u64);
        assert!(stats.peak_live_states <= s, "s = {s}: {} live", stats.peak_live_states);
        assert!(ws.allocated_slots() <= s.min(n), "s = {s}: {} slot buffers", ws.allocated_slots());
    }
}

#[test]
fn workspace_is_reused_without_growth() {
    let p = Problem::new(6, 6, 6, 5);
    let schedule = Schedule::binomial(30, 4);
    let mut ws = RolloutWorkspace::new(&p.toy);
    let first = p.gradient(&schedule, &mut ws);
    let bytes = ws.state_bytes();
    assert!(bytes <= (4 + 4) * 36 * 8, "{bytes} bytes of state buffers");
    let again = p.gradient(&schedule, &mut ws);
    assert_eq!(ws.state_bytes(), bytes, "buffers grew on reuse");
    assert_eq!(first.0.to_bits(), again.0.to_bits());
    assert_eq!(
        first.2.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        again.2.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn memory_benchmark_reports_every_case() {
    use colop::solver::membench::{memory_benchmark, MemBenchOptions};
    let toy = Toy::new(21, 21);
    let coeffs = Fields::from_elem((2, 21, 21), 0.5);
    let options = MemBenchOptions { n_samples: 6, steps: vec![5, 40], checkpoints: 4, h: 0.05, repeats: 1 };
    let report = memory_benchmark(&toy, &coeffs, &options);
    assert_eq!(report["samples"], 6);
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for (case, k) in cases.iter().zip([5u64, 40]) {
        assert_eq!(case["steps"], k);
        assert_eq!(case["gradients_bitwise_equal"], true, "{case}");
        assert_eq!(case["loss_matches_forward"], true, "{case}");
        let ck = &case["checkpointed"];
        assert_eq!(
            ck["forward_steps_per_sample"].as_f64().unwrap(),
            ck["optimal_forward_steps_per_sample"].as_f64().unwrap()
        );
        assert!(ck["peak_live_states_per_sample"].as_u64().unwrap() <= 4);
        assert_eq!(case["store_all"]["recomputed_steps_per_sample"], 0.0);
        assert!(case["forward_s"].as_f64().unwrap() > 0.0);
        if cfg!(target_os = "linux") {
            assert!(ck["peak_rss_mb"].as_f64().unwrap() > 0.0, "{case}");
        }
    }
}

/// Full-size figures on the toy scheme: `cargo test --release --test rollout_checkpoint -- --ignored --nocapture`.
#[test]
#[ignore]
fn memory_benchmark_full_size() {
    use colop::solver::membench::{memory_benchmark, MemBenchOptions};
    let toy = Toy::new(51, 51);
    let coeffs = Fields::from_elem((2, 51, 51), 0.5);
    let report = memory_benchmark(&toy, &coeffs, &MemBenchOptions { h: 0.05, ..MemBenchOptions::default() });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}
