#!/usr/bin/env bash
# Run every colop test: unit and integration tests (optimised build, small grids) including the
# MPI tests under mpirun, the openPMD-api import test, then the Slurm job-script tests on a local
# single-node cluster (as root, as CI runs). Installs missing system packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# The `ci` profile: release code generation without LTO or debug info (see Cargo.toml), so the
# test binaries build in minutes. Every test binary runs, even after a failure in another.
cargo build --profile ci --bins --examples
cargo test --profile ci --all-targets --no-fail-fast -- --test-threads=2
# openPMD import against series written by the official openPMD-api (Python venv cached in
# target/; skipped with a message if the Python package registry is unreachable).
COLOP="$(realpath "${CARGO_TARGET_DIR:-target}/ci/colop")" bash tests/openpmd/run.sh

if [ "$(id -u)" -eq 0 ]; then
  COLOP="$(realpath "${CARGO_TARGET_DIR:-target}/ci/colop")" bash tests/slurm/run.sh
else
  echo "slurm tests: skipped (not root: the local Slurm daemons need root)"
fi
