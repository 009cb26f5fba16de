//! Evaluation: autoregressive rollouts of an operator against observed runs, error metrics and
//! velocity moments.
//!
//! From snapshot `i_start` (each run's own numbering) the model is rolled to the end of the run
//! with its solver settings; both sides are normalised by the observed particle count at
//! `i_start`. Per predicted snapshot: `mse` = mean (p−o)², `l1` = mean |p−o|, `l2` = ‖p−o‖₂,
//! `l1_norm` = Σ|p−o| / Σo, `l2_norm` = ‖p−o‖₂/‖o‖₂; each reported as the mean over steps and at
//! the final step. Moments: mean v_x, v_y and variances of predicted and observed f; their errors
//! are relative to the observed variance, and for means relative to the observed standard
//! deviation (a mean near zero has no useful relative error).

pub mod compare;
pub mod model;

use crate::grid::VelocityGrid;
use crate::model_file::SavedModel;
use crate::operator::{self, BuildInfo, Fields, OperatorModel};
use crate::solver::{self, Scheme};
use anyhow::Context as _;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// First two moments of a distribution on the grid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Moments {
    pub mean_vx: f64,
    pub mean_vy: f64,
    pub var_vx: f64,
    pub var_vy: f64,
    /// 3D grids only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_vz: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub var_vz: Option<f64>,
}

impl Moments {
    /// Mean and variance of every velocity component of `f` (cells in C order).
    pub fn of(f: &[f64], grid: &VelocityGrid) -> Self {
        let d = grid.dim();
        let centres: Vec<Vec<f64>> = (0..d).map(|a| grid.centres(a)).collect();
        let (mut m, mut s, mut ss) = (0.0, [0.0; 3], [0.0; 3]);
        let nz = grid.nz();
        for i in 0..grid.nx {
            for j in 0..grid.ny {
                for k in 0..nz {
                    let w = f[(i * grid.ny + j) * nz + k];
                    m += w;
                    for (a, &idx) in [i, j, k][..d].iter().enumerate() {
                        let v = centres[a][idx];
                        s[a] += w * v;
                        ss[a] += w * v * v;
                    }
                }
            }
        }
        if m <= 0.0 {
            return Self::default();
        }
        let mean = s.map(|x| x / m);
        let var: [f64; 3] = std::array::from_fn(|a| ss[a] / m - mean[a] * mean[a]);
        let z = d == 3;
        Self {
            mean_vx: mean[0],
            mean_vy: mean[1],
            var_vx: var[0],
            var_vy: var[1],
            mean_vz: z.then_some(mean[2]),
            var_vz: z.then_some(var[2]),
        }
    }

    /// `(mean, variance)` of every component.
    fn components(&self) -> Vec<(f64, f64)> {
        let mut c = vec![(self.mean_vx, self.var_vx), (self.mean_vy, self.var_vy)];
        if let (Some(m), Some(v)) = (self.mean_vz, self.var_vz) {
            c.push((m, v));
        }
        c
    }
}

/// Errors of one predicted snapshot.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct StepErrors {
    pub mse: f64,
    pub l1: f64,
    pub l2: f64,
    pub l1_norm: f64,
    pub l2_norm: f64,
}

impl StepErrors {
    pub fn of(pred: &[f64], obs: &[f64]) -> Self {
        let n = pred.len() as f64;
        let (mut s1, mut s2, mut o1, mut o2) = (0.0, 0.0, 0.0, 0.0);
        for (p, o) in pred.iter().zip(obs) {
            let d = p - o;
            s1 += d.abs();
            s2 += d * d;
            o1 += o.abs();
            o2 += o * o;
        }
        Self { mse: s2 / n, l1: s1 / n, l2: s2.sqrt(), l1_norm: s1 / o1.max(f64::MIN_POSITIVE), l2_norm: (s2 / o2.max(f64::MIN_POSITIVE)).sqrt() }
    }
}

/// Evaluation of one run.
#[derive(Clone, Debug, Serialize)]
pub struct RunEval {
    pub file: String,
    pub i_start: usize,
    pub steps: usize,
    pub substeps: usize,
    pub mean_mse: f64,
    pub final_mse: f64,
    pub mean_l1: f64,
    pub final_l1: f64,
    pub mean_l2: f64,
    pub final_l2: f64,
    pub mean_l1_norm: f64,
    pub final_l1_norm: f64,
    pub mean_l2_norm: f64,
    pub final_l2_norm: f64,
    /// Mean over steps of |Δmean|/σ_obs and |Δvar|/var_obs, both axes averaged.
    pub mean_moment_mean_error: f64,
    pub mean_moment_var_error: f64,
    pub final_moment_mean_error: f64,
    pub final_moment_var_error: f64,
    /// Times (1/ω_p) of the predicted snapshots.
    pub t: Vec<f64>,
    pub l1_norm: Vec<f64>,
    pub moments_pred: Vec<Moments>,
    pub moments_obs: Vec<Moments>,
    /// A few snapshots for figures: (time, predicted, observed), flattened.
    #[serde(skip)]
    pub frames: Vec<(f64, Vec<f64>, Vec<f64>)>,
}

/// An operator ready to roll out: fields at any time for one run.
pub struct Rollable {
    pub grid: VelocityGrid,
    pub scheme: Box<dyn Scheme>,
    model: Option<Box<dyn OperatorModel>>,
    theta: Vec<f64>,
    static_fields: Fields,
    cond_names: Vec<(String, f64, f64)>,
    /// Conditioner overrides (`--params`).
    overrides: Vec<(String, f64)>,
}

impl Rollable {
    /// From a saved model. Static, unconditioned models use the stored fields; time-dependent or
    /// conditioned ones are rebuilt from θ.
    pub fn new(saved: &SavedModel, overrides: Vec<(String, f64)>) -> anyhow::Result<Self> {
        let dynamic = saved.spec.kind.is_time_dependent() || !saved.cond_ranges.is_empty();
        let model = if dynamic {
            anyhow::ensure!(!saved.theta.is_empty(), "model has no parameters to rebuild its time or parameter dependence");
            let info = BuildInfo { grid: saved.grid.clone(), cond_ranges: saved.cond_ranges.iter().map(|c| (c.1, c.2)).collect(), t_span: saved.t_span };
            let m = operator::build(&saved.spec, &info)?;
            anyhow::ensure!(m.n_params() == saved.theta.len(), "model expects {} parameters, file has {}", m.n_params(), saved.theta.len());
            Some(m)
        } else {
            None
        };
        let equation = match &model {
            Some(m) => m.equation(),
            None => saved.spec.equation(),
        };
        let scheme = solver::build(&saved.solver, &equation, &saved.grid)?;
        for (k, _) in &overrides {
            anyhow::ensure!(saved.cond_ranges.iter().any(|c| &c.0 == k), "--params: the model is not conditioned on `{k}`");
        }
        Ok(Self {
            grid: saved.grid.clone(),
            scheme,
            model,
            theta: saved.theta.clone(),
            static_fields: saved.fields.clone(),
            cond_names: saved.cond_ranges.clone(),
            overrides,
        })
    }

    /// Normalised conditioner vector for a run's parameters (overrides first).
    pub fn cond_for(&self, params: &std::collections::BTreeMap<String, f64>) -> anyhow::Result<Vec<f64>> {
        let values = self
            .cond_names
            .iter()
            .map(|(name, _, _)| match self.overrides.iter().find(|o| &o.0 == name) {
                Some(o) => Ok(o.1),
                None => params.get(name).copied().with_context(|| format!("run has no parameter `{name}`; give it with --params {name}=VALUE")),
            })
            .collect::<anyhow::Result<Vec<f64>>>()?;
        let ranges: Vec<(f64, f64)> = self.cond_names.iter().map(|c| (c.1, c.2)).collect();
        Ok(crate::operator::mlp::normalise_conditioners(&values, &ranges))
    }

    /// The discretisation of this operator on `run` (conditioner vector `cond`): exactly what
    /// training builds for it.
    pub fn coefficients(&self, cond: &[f64], run: &crate::data::Run) -> crate::solver::coefficients::RunCoefficients {
        let mut c = crate::solver::coefficients::RunCoefficients::default();
        let shape = self.static_fields.dim();
        match &self.model {
            Some(m) if m.n_time_nodes() > 1 => {
                let nodes: Vec<Fields> = (0..m.n_time_nodes())
                    .map(|n| {
                        let mut f = Fields::zeros(shape);
                        m.node_fields(&self.theta, cond, n, &mut f);
                        f
                    })
                    .collect();
                let n_rows = run.rows() - 1;
                let weights: Vec<_> = (0..n_rows).map(|row| m.time_weights(run.t_mid(row))).collect();
                let mut scratch = Fields::zeros(shape);
                c.update(self.scheme.as_ref(), &nodes, &run.spacing(), run.first_row..n_rows, n_rows, Some(&weights), &mut scratch);
            }
            _ => {
                let fields = self.fields(cond, 0.0);
                let n_rows = run.rows() - 1;
                let mut scratch = Fields::zeros(fields.dim());
                c.update(self.scheme.as_ref(), std::slice::from_ref(&fields), &run.spacing(), run.first_row..n_rows, n_rows, None, &mut scratch);
            }
        }
        c
    }

    /// Fields at time `t` for conditioner vector `cond`.
    pub fn fields(&self, cond: &[f64], t: f64) -> Fields {
        match &self.model {
            Some(m) => m.fields_at(&self.theta, cond, t),
            None => self.static_fields.clone(),
        }
    }
}

/// Roll `op` out over one run file, with the discretisation training uses
/// ([`crate::solver::coefficients`]) and the shared rollout code.
pub fn evaluate_run(op: &Rollable, path: &Path, i_start: usize, n_frames: usize) -> anyhow::Result<RunEval> {
    let run = crate::data::Run::open(path, i_start)?;
    anyhow::ensure!(run.grid().compatible(&op.grid), "{}: grid differs from the model's", path.display());
    let first = run.first_row;
    let steps = run.usable_intervals();
    let sample = crate::data::Sample { run: 0, start: first, intervals: steps, channel: 0 };
    let data = crate::data::ShardData::load_runs(std::slice::from_ref(&run), &[sample])?;
    let cond = op.cond_for(run.params())?;
    let coeffs = op.coefficients(&cond, &run);
    let substeps = coeffs.substeps;
    let g = &op.grid;
    let mut ws = crate::solver::rollout::RolloutWorkspace::new(op.scheme.as_ref());
    let frame_at: Vec<usize> = (1..=n_frames).map(|i| (i * steps).div_ceil(n_frames)).collect();
    let mut errs = Vec::with_capacity(steps);
    let (mut mp, mut mo, mut ts, mut frames) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut blew_up = None;
    let snapshot = |row: usize| data.snapshot(0, row).expect("the whole run is loaded");
    crate::solver::rollout::forward_by(op.scheme.as_ref(), steps, |k| coeffs.prepared(first + k), substeps, snapshot(first), &mut ws, |k, f| {
        if blew_up.is_some() {
            return;
        }
        if !f.iter().all(|v| v.is_finite()) {
            blew_up = Some(k);
            return;
        }
        let row = first + k;
        let obs = snapshot(row);
        errs.push(StepErrors::of(f, obs));
        mp.push(Moments::of(f, g));
        mo.push(Moments::of(obs, g));
        ts.push(run.t()[row]);
        if frame_at.contains(&k) {
            frames.push((run.t()[row], f.to_vec(), obs.to_vec()));
        }
    });
    if let Some(k) = blew_up {
        anyhow::bail!("{}: the rollout became non-finite at step {k}", path.display());
    }
    let mean = |sel: fn(&StepErrors) -> f64| errs.iter().map(sel).sum::<f64>() / errs.len().max(1) as f64;
    let last = errs.last().copied().unwrap_or_default();
    // Errors averaged over the components: |Δmean|/σ_obs and |Δvar|/var_obs.
    let mom_err = |p: &Moments, o: &Moments| {
        let (pc, oc) = (p.components(), o.components());
        let n = oc.len() as f64;
        let me = pc.iter().zip(&oc).map(|(p, o)| (p.0 - o.0).abs() / o.1.max(1e-300).sqrt()).sum::<f64>() / n;
        let ve = pc.iter().zip(&oc).map(|(p, o)| (p.1 - o.1).abs() / o.1.max(1e-300)).sum::<f64>() / n;
        (me, ve)
    };
    let me: Vec<(f64, f64)> = mp.iter().zip(&mo).map(|(p, o)| mom_err(p, o)).collect();
    let nstep = me.len().max(1) as f64;
    Ok(RunEval {
        file: path.display().to_string(),
        i_start,
        steps,
        substeps,
        mean_mse: mean(|e| e.mse),
        final_mse: last.mse,
        mean_l1: mean(|e| e.l1),
        final_l1: last.l1,
        mean_l2: mean(|e| e.l2),
        final_l2: last.l2,
        mean_l1_norm: mean(|e| e.l1_norm),
        final_l1_norm: last.l1_norm,
        mean_l2_norm: mean(|e| e.l2_norm),
        final_l2_norm: last.l2_norm,
        mean_moment_mean_error: me.iter().map(|x| x.0).sum::<f64>() / nstep,
        mean_moment_var_error: me.iter().map(|x| x.1).sum::<f64>() / nstep,
        final_moment_mean_error: me.last().map_or(0.0, |x| x.0),
        final_moment_var_error: me.last().map_or(0.0, |x| x.1),
        t: ts,
        l1_norm: errs.iter().map(|e| e.l1_norm).collect(),
        moments_pred: mp,
        moments_obs: mo,
        frames,
    })
}

/// Find the model file of a run directory or take the path as a model file.
pub fn model_path(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join("model.h5")
    } else {
        p.to_path_buf()
    }
}
