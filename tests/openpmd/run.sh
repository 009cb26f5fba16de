#!/usr/bin/env bash
# `colop import openpmd` against series written by the official openPMD-api Python package:
# both iteration encodings, unitSI ≠ 1, non-uniform weights, relativistic and macro-weighted
# momenta, ids, constant records (one with fbpic's shape [1]); histograms, times and tracks must
# equal what numpy computes from the same arrays, bit for bit. The venv is cached under target/.
# If the Python package registry cannot be reached, the test says so and is skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
COLOP="${COLOP:-${CARGO_TARGET_DIR:-target}/ci/colop}"
VENV="${CARGO_TARGET_DIR:-target}/openpmd-venv"
if ! "$VENV/bin/python" -c "import openpmd_api, numpy, h5py" 2>/dev/null; then
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV"; then
    echo "openpmd tests: FAILED to create a Python venv (install python3-venv; scripts/setup.sh does)" >&2
    exit 1
  fi
  if ! "$VENV/bin/pip" install -q --disable-pip-version-check openpmd-api numpy h5py; then
    echo "openpmd tests: SKIPPED (cannot install openpmd-api, numpy, h5py from the Python package registry)"
    rm -rf "$VENV"
    exit 0
  fi
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$VENV/bin/python" tests/openpmd/check.py "$(realpath "$COLOP")" "$WORK"
