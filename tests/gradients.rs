//! Finite-difference checks of whole multi-step rollout losses through model + scheme: ∂L/∂θ
//! from the adjoint chain (rollout adjoint → prepare_vjp → model VJP) against central differences,
//! for every Fokker–Planck model kind × scheme × boundary × clamp. Each checked entry's own
//! relative error is asserted: every entry of small models, 64 random entries of larger ones; one
//! case drives the clamp (f ← max(f, 0)) into action and checks that its active set is non-empty.

use colop::grid::VelocityGrid;
use colop::operator::spec::{ModelKind, ModelSpec, Symmetry};
use colop::operator::{self, BuildInfo, Equation, Fields, OperatorModel};
use colop::solver::checkpoint::Schedule;
use colop::solver::rollout::{self, RolloutWorkspace};
use colop::solver::{self, Boundary, SchemeKind, SolverSpec, Substeps};

const K: usize = 3;
const T: f64 = 1.5;

/// A smooth positive initial state: the clamp never acts.
fn f0(g: &VelocityGrid) -> Vec<f64> {
    (0..g.n_cells())
        .map(|c| {
            let (i, j) = (c / g.ny, c % g.ny);
            let (x, y) = (g.vx(i) + 0.3, g.vy(j) - 0.2);
            0.05 + (-(x * x + y * y) / 1.5).exp()
        })
        .collect()
}

/// A single spike on an empty grid: centred differences undershoot next to it, so the clamp acts.
fn spike(g: &VelocityGrid) -> Vec<f64> {
    let mut f = vec![0.0; g.n_cells()];
    f[(g.nx / 2) * g.ny + g.ny / 2 - 1] = 1.0;
    f
}

/// Loss Σ_k Σ_c w_{k,c} f_k(c) of a K-interval rollout from `f0`, and its gradient with respect to θ.
fn loss_and_grad(model: &dyn OperatorModel, scheme: &dyn solver::Scheme, theta: &[f64], f0: &[f64], grad: Option<&mut [f64]>) -> f64 {
    let g = model.grid();
    let n = g.n_cells();
    let fields = model.fields_at(theta, &[], T);
    let mut p = Fields::zeros(scheme.prepared_shape());
    let h = 0.2;
    scheme.prepare(fields.view(), h, p.view_mut());
    let weights = |k: usize, c: usize| ((k * 31 + c * 17) % 13) as f64 / 13.0 - 0.4;
    let prepared = vec![&p; K];
    let mut ws = RolloutWorkspace::new(scheme);
    let mut d_prep = vec![Fields::zeros(p.dim())];
    let stats = rollout::gradient(scheme, &prepared, &[0; K], &mut d_prep, 2, f0, &Schedule::binomial(2 * K, 2), &mut ws, |k, s, lam| {
        let mut l = 0.0;
        for c in 0..n {
            l += weights(k, c) * s[c];
            lam[c] += weights(k, c);
        }
        l
    });
    if let Some(grad) = grad {
        let mut d_fields = Fields::zeros(fields.dim());
        scheme.prepare_vjp(fields.view(), h, d_prep[0].view(), d_fields.view_mut());
        for nw in model.time_weights(T) {
            model.node_fields_vjp(theta, &[], nw.node, &(&d_fields * nw.weight), grad);
        }
    }
    stats.loss
}

/// Entries to check: all of a small model, 64 distinct random ones of a larger one.
fn picks(n: usize, seed: u64) -> Vec<usize> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut all: Vec<usize> = (0..n).collect();
    if n > 200 {
        all.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        all.truncate(64);
    }
    all
}

/// Largest relative error |fd − adjoint| / max(|adjoint|, floor) over `entries`, asserted below
/// `tol` entry by entry. The floor, 1e-3 of the largest gradient entry, keeps entries that are zero
/// up to rounding from comparing the difference quotient's rounding noise (~1e-10 of the loss)
/// with itself.
fn check(model: &dyn OperatorModel, scheme: &dyn solver::Scheme, theta: &[f64], f0: &[f64], entries: &[usize], tol: f64, label: &str) -> f64 {
    let mut grad = vec![0.0; theta.len()];
    loss_and_grad(model, scheme, theta, f0, Some(&mut grad));
    let scale = grad.iter().map(|g| g.abs()).fold(0.0, f64::max);
    assert!(scale > 0.0, "{label}: zero gradient");
    let mut worst: f64 = 0.0;
    for &i in entries {
        let eps = 1e-6 * (1.0 + theta[i].abs());
        let mut tp = theta.to_vec();
        let mut tm = theta.to_vec();
        tp[i] += eps;
        tm[i] -= eps;
        let fd = (loss_and_grad(model, scheme, &tp, f0, None) - loss_and_grad(model, scheme, &tm, f0, None)) / (2.0 * eps);
        let err = (fd - grad[i]).abs() / grad[i].abs().max(1e-3 * scale);
        worst = worst.max(err);
        assert!(err < tol, "{label}: θ[{i}] adjoint {} vs fd {fd} (rel {err:e})", grad[i]);
    }
    worst
}

/// A generic point: initial parameters plus a deterministic perturbation.
fn generic_theta(model: &dyn OperatorModel) -> Vec<f64> {
    model.init_params(2).iter().enumerate().map(|(i, t)| t + 0.004 * (((i * 7) % 11) as f64 / 11.0 - 0.3)).collect()
}

#[test]
fn rollout_gradients_match_finite_differences_for_every_model_and_scheme() {
    let grid = VelocityGrid::square(8, 3.0).unwrap();
    let info = BuildInfo { grid: grid.clone(), cond_ranges: vec![], t_span: 4.0 };
    let kinds: Vec<ModelSpec> = vec![
        ModelSpec { kind: ModelKind::Tensor, ..Default::default() },
        ModelSpec { kind: ModelKind::TensorSym, nonnegative_d: true, ..Default::default() },
        ModelSpec { kind: ModelKind::ParPerp, ..Default::default() },
        ModelSpec { kind: ModelKind::TensorTime, n_t: 3, ..Default::default() },
        ModelSpec { kind: ModelKind::ParPerpTime, n_t: 3, ..Default::default() },
        ModelSpec { kind: ModelKind::Mlp, symmetry: Symmetry::Isotropic, width: 6, depth: 1, ..Default::default() },
    ];
    let schemes = [
        (SchemeKind::Central, Boundary::Guard),
        (SchemeKind::Central, Boundary::OneSided),
        (SchemeKind::Conservative, Boundary::Guard),
    ];
    let f0 = f0(&grid);
    let mut worst: f64 = 0.0;
    let mut checked = 0;
    for (m, spec) in kinds.iter().enumerate() {
        let model = operator::build(spec, &info).unwrap();
        assert_eq!(model.equation(), Equation::FokkerPlanck);
        let theta = generic_theta(model.as_ref());
        let entries = picks(theta.len(), m as u64);
        assert!(entries.len() >= 50.min(theta.len()));
        let mut worst_model: f64 = 0.0;
        for (kind, boundary) in schemes {
            for clamp in [false, true] {
                let ss = SolverSpec { scheme: kind, boundary, clamp_nonnegative: clamp, substeps: Substeps::Fixed(1), ..Default::default() };
                let scheme = solver::build(&ss, &Equation::FokkerPlanck, &grid).unwrap();
                let label = format!("{:?} {kind:?} {boundary:?} clamp {clamp}", spec.kind);
                worst_model = worst_model.max(check(model.as_ref(), scheme.as_ref(), &theta, &f0, &entries, 1e-4, &label));
                checked += entries.len();
            }
        }
        eprintln!("{:?}: {} of {} entries, worst relative error {worst_model:.2e}", spec.kind, entries.len(), theta.len());
        worst = worst.max(worst_model);
    }
    eprintln!("{checked} entries checked, worst relative error {worst:.2e}");
}

/// Cells the clamp zeroes over a K-interval rollout from `f0`: each step is taken unclamped and
/// clamped by hand (checked bitwise against the clamped scheme's own step).
fn clamp_active_cells(model: &dyn OperatorModel, clamped: &dyn solver::Scheme, unclamped: &dyn solver::Scheme, theta: &[f64], f0: &[f64]) -> usize {
    let fields = model.fields_at(theta, &[], T);
    let mut p = Fields::zeros(clamped.prepared_shape());
    clamped.prepare(fields.view(), 0.2, p.view_mut());
    let (mut ws_c, mut ws_u) = (clamped.workspace(), unclamped.workspace());
    let mut f = f0.to_vec();
    let (mut pre, mut next) = (vec![0.0; f.len()], vec![0.0; f.len()]);
    let mut active = 0;
    for _ in 0..2 * K {
        unclamped.step(&p, &f, &mut pre, &mut ws_u);
        clamped.step(&p, &f, &mut next, &mut ws_c);
        active += pre.iter().filter(|x| **x < 0.0).count();
        let by_hand: Vec<f64> = pre.iter().map(|x| x.max(0.0)).collect();
        assert!(by_hand == next, "the clamped step is not max(unclamped step, 0)");
        std::mem::swap(&mut f, &mut next);
    }
    active
}

#[test]
fn rollout_gradients_match_finite_differences_where_the_clamp_acts() {
    let grid = VelocityGrid::square(8, 3.0).unwrap();
    let info = BuildInfo { grid: grid.clone(), cond_ranges: vec![], t_span: 4.0 };
    let f0 = spike(&grid);
    for spec in [
        ModelSpec { kind: ModelKind::Tensor, ..Default::default() },
        ModelSpec { kind: ModelKind::ParPerp, ..Default::default() },
        ModelSpec { kind: ModelKind::TensorTime, n_t: 3, ..Default::default() },
    ] {
        let model = operator::build(&spec, &info).unwrap();
        // A strong drift: the central differences undershoot behind the moving spike.
        let theta: Vec<f64> = generic_theta(model.as_ref()).iter().map(|t| 20.0 * t).collect();
        // The conservative scheme stays non-negative at this step: only the central one undershoots.
        for (kind, boundary) in [(SchemeKind::Central, Boundary::Guard), (SchemeKind::Central, Boundary::OneSided)] {
            let build = |clamp| {
                let ss = SolverSpec { scheme: kind, boundary, clamp_nonnegative: clamp, substeps: Substeps::Fixed(1), ..Default::default() };
                solver::build(&ss, &Equation::FokkerPlanck, &grid).unwrap()
            };
            let (clamped, unclamped) = (build(true), build(false));
            let active = clamp_active_cells(model.as_ref(), clamped.as_ref(), unclamped.as_ref(), &theta, &f0);
            let label = format!("{:?} {kind:?} {boundary:?} with the clamp active in {active} cell-steps", spec.kind);
            assert!(active > 0, "{label}: the clamp never acted");
            let entries = picks(theta.len(), 99);
            let worst = check(model.as_ref(), clamped.as_ref(), &theta, &f0, &entries, 1e-4, &label);
            // The clamp changes the gradient: the unclamped rollout's differs.
            let mut g_c = vec![0.0; theta.len()];
            let mut g_u = vec![0.0; theta.len()];
            loss_and_grad(model.as_ref(), clamped.as_ref(), &theta, &f0, Some(&mut g_c));
            loss_and_grad(model.as_ref(), unclamped.as_ref(), &theta, &f0, Some(&mut g_u));
            assert!(g_c != g_u, "{label}: clamped and unclamped gradients are equal");
            eprintln!("{label}: {} of {} entries, worst relative error {worst:.2e}", entries.len(), theta.len());
        }
    }
}
