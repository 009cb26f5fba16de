#!/usr/bin/env bash
# Long physics validations (minutes): operator recovery from synthetic data, the conditioned,
# time-dependent and kernel models. Prints the figures each test measures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --release --test recovery -- --nocapture --test-threads=1 2>&1 | grep -E "relative L2|l1_norm|staged|test result"
cargo test --release --test validate_models -- --ignored --nocapture --test-threads=1 2>&1 | grep -E "l1_norm|rel L2|s/epoch|test result|panicked"
