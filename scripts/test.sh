#!/usr/bin/env bash
# Run every colop test: unit and integration tests (release build, small grids), then the MPI
# tests under mpirun. Installs missing system packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
cargo build --release --bins
cargo test --release --all-targets -- --test-threads=2
