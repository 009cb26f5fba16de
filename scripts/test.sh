#!/usr/bin/env bash
# Run every colop test: unit and integration tests (release build, small grids) including the
# MPI tests under mpirun, then the Slurm job-script tests on a local single-node cluster (as root,
# as CI runs). Installs missing system packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
cargo build --release --bins --examples
cargo test --release --all-targets -- --test-threads=2

if [ "$(id -u)" -eq 0 ]; then
  bash tests/slurm/run.sh
else
  echo "slurm tests: skipped (not root: the local Slurm daemons need root)"
fi
