#!/usr/bin/env bash
# Slurm integration tests on a local single-node cluster (scripts/local-slurm.sh):
#  1. jobs/train.sbatch on 2 tasks runs to completion and writes the run directory;
#  2. the same job, sent USR1 mid-run (as Slurm does before a time limit), checkpoints (exit 75),
#     requeues itself, resumes, and ends with the same model as the uninterrupted run;
#  3. jobs/scaling.sbatch sweeps 1 and 2 ranks and writes its CSV files.
# The trainer is COLOP (default: target/release/colop) on tiny synthetic runs made here. Needs
# root; exits 0 with "skipped" otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"

if [ "$(id -u)" -ne 0 ]; then
  echo "slurm tests: skipped (need root to run the local Slurm daemons)"
  exit 0
fi
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -z "${COLOP:-}" ]; then
  cargo build --release --bin colop >/dev/null
  COLOP="$TARGET/release/colop"
fi
export COLOP
bash scripts/local-slurm.sh start
export SLURM_CONF="${COLOP_SLURM_DIR:-/tmp/colop-slurm}/slurm.conf"

WORK="$(mktemp -d /tmp/colop-slurm-test.XXXXXX)"
CONFIG="${SLURM_TEST_CONFIG:-$WORK/tiny.yaml}"
if [ ! -f "$CONFIG" ]; then
  # Two small runs and a config whose epochs take long enough (sub-steps) for a signal to land
  # mid-run.
  cat >"$WORK/synth.yaml" <<'YAML'
grid: { n: 31, v_max: 4.0 }
operator: { kind: radial, d_par: "0.05*(1+v^2/4)^(-1.5)", d_perp: "0.05*(1+v^2/4)^(-0.5)", a_par: stationary }
snapshots: 24
substeps: 20
runs:
  - { name: a, initial: [ { kind: normal, centre: [-1.0, 0.5], sigma: 0.6 } ] }
  - { name: b, initial: [ { kind: ring, radius: 1.5, width: 0.3 } ] }
YAML
  "$COLOP" -q synth "$WORK/synth.yaml" --out "$WORK/data" >/dev/null
  cat >"$CONFIG" <<'YAML'
data: { train: [data/a.h5, data/b.h5], valid_fraction: 0.1, i_start: 2 }
model: { kind: par-perp }
solver: { scheme: central, substeps: 20 }
train:
  seed: 5
  log_every: 20
  stages: [ { unroll: 2, epochs: 150, lr: 1.0e-3 }, { unroll: 4, epochs: 60 } ]
YAML
fi
fail() { echo "slurm tests: FAIL: $*" >&2; tail -n 30 "$WORK"/*.out >&2 || true; exit 1; }

job_state() { scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
wait_job() { # wait_job ID TIMEOUT_S: until the job has ended; prints its final state
  local id="$1" deadline=$((SECONDS + $2)) state pending_since=""
  while [ "$SECONDS" -lt "$deadline" ]; do
    state="$(job_state "$id")"
    # Slurm holds a requeued job for two minutes; release it after 10 s (enough for the old
    # step to be cleaned up) to keep the test short.
    if [ "$state" = PENDING ] && scontrol show job "$id" | grep -q 'Restarts=[1-9]'; then
      pending_since="${pending_since:-$SECONDS}"
      if [ $((SECONDS - pending_since)) -ge 10 ]; then
        scontrol update JobId="$id" StartTime=now >/dev/null 2>&1 || true
      fi
    fi
    case "$state" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE) echo "$state"; return ;; esac
    sleep 1
  done
  echo "TIMEOUT_WAITING"
}
submit() { # submit NAME [extra sbatch options]: prints the job id
  local name="$1"; shift
  sbatch --parsable --ntasks=2 --cpus-per-task=1 --job-name="colop-test-$name" \
    --output="$WORK/$name-%j.out" --chdir="$WORK" "$@" \
    "$ROOT/jobs/train.sbatch" "$CONFIG" "$WORK/$name"
}

# 1. Uninterrupted.
id="$(submit plain)"
state="$(wait_job "$id" 300)"
[ "$state" = COMPLETED ] || fail "job $id ended $state"
[ -s "$WORK/plain/model.h5" ] || fail "no model.h5 in $WORK/plain"
[ -s "$WORK/plain/metrics.jsonl" ] || fail "no metrics.jsonl in $WORK/plain"
[ ! -e "$WORK/plain/checkpoint.h5" ] || fail "checkpoint.h5 left behind"
grep -q '"ranks":2' "$WORK/plain/metrics.jsonl" || fail "the job did not run on 2 ranks"
echo "slurm tests: ok: 2-task job $id completed"

# 2. USR1 to the batch shell mid-run → checkpoint, requeue, resume.
id="$(submit preempted)"
deadline=$((SECONDS + 120))
lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
until [ "$(lines "$WORK/preempted/metrics.jsonl")" -ge 3 ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "job $id made no progress"
  sleep 0.5
done
scancel --batch --signal=USR1 "$id"
state="$(wait_job "$id" 600)"
[ "$state" = COMPLETED ] || fail "job $id ended $state"
restarts="$(scontrol show job "$id" | grep -o 'Restarts=[0-9]*' | cut -d= -f2)"
[ "${restarts:-0}" -ge 1 ] || fail "job $id was not requeued (Restarts=${restarts:-?})"
grep -q "requeueing" "$WORK"/preempted-*.out || fail "no requeue message in the job output"
cmp "$WORK/plain/model.h5" "$WORK/preempted/model.h5" || fail "resumed model differs from the uninterrupted one"
echo "slurm tests: ok: job $id checkpointed on USR1, requeued $restarts time(s), same model"

# 3. Scaling sweep on 1 and 2 ranks writes both CSV files.
id="$(sbatch --parsable --ntasks=2 --cpus-per-task=1 --job-name=colop-test-scaling \
  --output="$WORK/scaling-%j.out" --chdir="$ROOT" "$ROOT/jobs/scaling.sbatch" \
  "${SLURM_SCALING_CONFIG:-$CONFIG}" "$WORK/scaling" "1 2")"
state="$(wait_job "$id" 600)"
[ "$state" = COMPLETED ] || fail "scaling job $id ended $state"
for mode in strong weak; do
  for p in 1 2; do
    grep -q "^$mode,$p," "$WORK/scaling/scaling_summary.csv" || fail "no $mode/$p row in scaling_summary.csv"
  done
done
echo "slurm tests: ok: scaling job $id wrote $(($(wc -l <"$WORK/scaling/scaling_epochs.csv") - 1)) epoch rows"
rm -rf "$WORK"
