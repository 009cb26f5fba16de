//! Executing a planned campaign: cost-balanced assignment of whole runs to ranks, skipping runs
//! whose output is already a valid, current run file (so an interrupted campaign resumes).

use super::{file_error, CampaignError, Manifest};
use crate::dist::Comm;
use crate::pic::PicConfig;
use std::path::Path;

/// Counts of one `execute` call, summed over all ranks (or this task alone with `only`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub ran: u64,
    pub skipped: u64,
    pub failed: u64,
}

/// Split runs of the given costs over `ranks`: longest first onto the least-loaded rank (ties:
/// lower id first, lower rank first). The same on every rank, so no communication is needed.
/// Each rank's list is in id order.
pub fn assign(costs: &[f64], ranks: usize) -> Vec<Vec<usize>> {
    let ranks = ranks.max(1);
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]).then(a.cmp(&b)));
    let mut load = vec![0.0f64; ranks];
    let mut share = vec![Vec::new(); ranks];
    for id in order {
        let r = (0..ranks).min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b))).expect("ranks ≥ 1");
        load[r] += costs[id];
        share[r].push(id);
    }
    share.iter_mut().for_each(|s| s.sort_unstable());
    share
}

/// Whether `output` is a readable run file made from exactly `cfg` (its `/params` match).
pub fn output_is_current(output: &Path, cfg: &PicConfig) -> bool {
    if !output.exists() {
        return false;
    }
    match crate::data::read_run(output) {
        Ok(run) => run.params == crate::pic::params(cfg),
        Err(e) => {
            tracing::warn!("{}: not a valid run file, running again ({e})", output.display());
            false
        }
    }
}

/// Run this rank's share of the campaign in `dir` (or only run `only`, e.g. a Slurm array task,
/// with no collective calls). `runner(cfg, output, name)` makes one run file; it must write
/// atomically. A failed run is logged and the others continue; the summary counts it.
pub fn execute<E: std::fmt::Display>(
    dir: &Path,
    comm: &dyn Comm,
    only: Option<usize>,
    runner: &mut dyn FnMut(&PicConfig, &Path, &str) -> Result<(), E>,
) -> Result<Summary, CampaignError> {
    let manifest = Manifest::load(dir)?;
    let mine: Vec<usize> = match only {
        Some(id) if id >= manifest.runs.len() => {
            return Err(CampaignError::NoSuchRun { id, count: manifest.runs.len() })
        }
        Some(id) => {
            if comm.rank() == 0 {
                vec![id]
            } else {
                Vec::new()
            }
        }
        None => {
            let costs: Vec<f64> = manifest.runs.iter().map(|r| r.cost).collect();
            assign(&costs, comm.size()).swap_remove(comm.rank())
        }
    };
    let mut summary = Summary::default();
    for id in mine {
        let run = &manifest.runs[id];
        let config_path = dir.join(&run.config);
        let output = dir.join(&run.output);
        let cfg = match PicConfig::load(&config_path) {
            Ok(cfg) => cfg,
            Err(e) => {
                tracing::error!("{}: {e}", run.name);
                summary.failed += 1;
                continue;
            }
        };
        if output_is_current(&output, &cfg) {
            tracing::info!("{}: {} exists, skipping", run.name, output.display());
            summary.skipped += 1;
            continue;
        }
        match runner(&cfg, &output, &run.name) {
            Ok(()) => summary.ran += 1,
            Err(e) => {
                tracing::error!("{}: {e}", run.name);
                summary.failed += 1;
            }
        }
    }
    if only.is_none() {
        let mut counts = [summary.ran, summary.skipped, summary.failed];
        comm.allreduce_sum_u64(&mut counts);
        summary = Summary { ran: counts[0], skipped: counts[1], failed: counts[2] };
    }
    if summary.failed > 0 {
        return Err(file_error(
            dir,
            format!("{} run(s) failed ({} ran, {} skipped)", summary.failed, summary.ran, summary.skipped),
        ));
    }
    Ok(summary)
}

/// The plain runner: PIC run, then an atomic write of the run file.
pub fn run_and_write(cfg: &PicConfig, output: &Path, _name: &str) -> Result<(), String> {
    let run = crate::pic::run(cfg, &mut |_, _| {}).map_err(|e| e.to_string())?;
    crate::data::write_run(output, &run).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_balances_and_covers() {
        let costs = [5.0, 1.0, 4.0, 3.0, 3.0, 2.0];
        let share = assign(&costs, 2);
        let load = |s: &Vec<usize>| s.iter().map(|&i| costs[i]).sum::<f64>();
        assert_eq!(load(&share[0]), 9.0);
        assert_eq!(load(&share[1]), 9.0);
        let mut all: Vec<usize> = share.concat();
        all.sort_unstable();
        assert_eq!(all, (0..6).collect::<Vec<_>>());
        assert_eq!(assign(&costs, 1), vec![(0..6).collect::<Vec<_>>()]);
        assert_eq!(assign(&[1.0], 3)[1..], [Vec::<usize>::new(), Vec::new()]);
    }
}
