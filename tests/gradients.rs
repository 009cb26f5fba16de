//! Finite-difference checks of whole multi-step rollout losses through model + scheme: ∂L/∂θ
//! from the adjoint chain (rollout adjoint → prepare_vjp → model VJP) against central differences,
//! for every Fokker–Planck model kind × scheme × boundary × clamp.

use colop::grid::VelocityGrid;
use colop::operator::spec::{ModelKind, ModelSpec, Symmetry};
use colop::operator::{self, BuildInfo, Equation, Fields, OperatorModel};
use colop::solver::checkpoint::Schedule;
use colop::solver::rollout::{self, RolloutWorkspace};
use colop::solver::{self, Boundary, SchemeKind, SolverSpec, Substeps};

const K: usize = 3;
const T: f64 = 1.5;

fn f0(g: &VelocityGrid) -> Vec<f64> {
    (0..g.n_cells())
        .map(|c| {
            let (i, j) = (c / g.ny, c % g.ny);
            let (x, y) = (g.vx(i) + 0.3, g.vy(j) - 0.2);
            0.05 + (-(x * x + y * y) / 1.5).exp()
        })
        .collect()
}

/// Loss Σ_k Σ_c w_{k,c} f_k(c) of a K-interval rollout, and its gradient with respect to θ.
fn loss_and_grad(model: &dyn OperatorModel, scheme: &dyn solver::Scheme, theta: &[f64], grad: Option<&mut [f64]>) -> f64 {
    let g = model.grid();
    let n = g.n_cells();
    let fields = model.fields_at(theta, &[], T);
    let mut p = Fields::zeros((scheme.n_prepared(), g.nx, g.ny));
    let h = 0.2;
    scheme.prepare(fields.view(), h, p.view_mut());
    let weights = |k: usize, c: usize| ((k * 31 + c * 17) % 13) as f64 / 13.0 - 0.4;
    let prepared = vec![&p; K];
    let mut ws = RolloutWorkspace::new(scheme);
    let mut d_prep = vec![Fields::zeros(p.dim())];
    let stats = rollout::gradient(scheme, &prepared, &[0; K], &mut d_prep, 2, &f0(g), &Schedule::binomial(2 * K, 2), &mut ws, |k, s, lam| {
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

#[test]
fn rollout_gradients_match_finite_differences_for_every_model_and_scheme() {
    let grid = VelocityGrid::square(8, 3.0).unwrap();
    let info = BuildInfo { grid: grid.clone(), cond_ranges: vec![], t_span: 4.0 };
    let kinds: Vec<ModelSpec> = vec![
        ModelSpec { kind: ModelKind::Tensor, ..Default::default() },
        ModelSpec { kind: ModelKind::TensorSym, nonnegative_d: true, ..Default::default() },
        ModelSpec { kind: ModelKind::ParPerp, ..Default::default() },
        ModelSpec { kind: ModelKind::ParPerpTime, n_t: 3, ..Default::default() },
        ModelSpec { kind: ModelKind::Mlp, symmetry: Symmetry::Isotropic, width: 6, depth: 1, ..Default::default() },
    ];
    let schemes = [
        (SchemeKind::Central, Boundary::Guard),
        (SchemeKind::Central, Boundary::OneSided),
        (SchemeKind::Conservative, Boundary::Guard),
    ];
    let mut worst: f64 = 0.0;
    for spec in &kinds {
        let model = operator::build(spec, &info).unwrap();
        assert_eq!(model.equation(), Equation::FokkerPlanck);
        // A generic point: initial parameters plus a deterministic perturbation.
        let theta: Vec<f64> = model.init_params(2).iter().enumerate().map(|(i, t)| t + 0.004 * (((i * 7) % 11) as f64 / 11.0 - 0.3)).collect();
        for (kind, boundary) in schemes {
            for clamp in [false, true] {
                let ss = SolverSpec { scheme: kind, boundary, clamp_nonnegative: clamp, substeps: Substeps::Fixed(1), ..Default::default() };
                let scheme = solver::build(&ss, &Equation::FokkerPlanck, &grid).unwrap();
                let mut grad = vec![0.0; theta.len()];
                loss_and_grad(model.as_ref(), scheme.as_ref(), &theta, Some(&mut grad));
                let picks: Vec<usize> = (0..theta.len()).step_by((theta.len() / 7).max(1)).collect();
                for &i in &picks {
                    let eps = 1e-6 * (1.0 + theta[i].abs());
                    let mut tp = theta.clone();
                    let mut tm = theta.clone();
                    tp[i] += eps;
                    tm[i] -= eps;
                    let fd = (loss_and_grad(model.as_ref(), scheme.as_ref(), &tp, None) - loss_and_grad(model.as_ref(), scheme.as_ref(), &tm, None)) / (2.0 * eps);
                    let scale = grad.iter().map(|g| g.abs()).fold(0.0, f64::max).max(1e-12);
                    let err = (fd - grad[i]).abs() / scale;
                    worst = worst.max(err);
                    assert!(err < 1e-6, "{:?} {kind:?} {boundary:?} clamp {clamp}: θ[{i}] adjoint {} vs fd {fd} (rel {err:e})", spec.kind, grad[i]);
                }
            }
        }
    }
    eprintln!("worst relative error {worst:e}");
}
