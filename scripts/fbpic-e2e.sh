#!/usr/bin/env bash
# A real external PIC run end to end (not in CI): install fbpic (CPU, with pyfftw and numba) in a
# venv cached under target/, run a small warm plasma with a drifting test species periodic in z
# (scripts/fbpic/warm_plasma.py), import the test species with `colop import openpmd`, train on it
# (configs/fbpic.yaml) and evaluate. STEPS and PERIOD override the run length (defaults 300, 10: 30 dumps over 15/ω_p).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${STEPS:-300}"
PERIOD="${PERIOD:-10}"
VENV="${CARGO_TARGET_DIR:-target}/fbpic-venv"
OUT=runs/fbpic-e2e
start=$(date +%s)
if ! "$VENV/bin/python" -c "import fbpic, pyfftw, numba" 2>/dev/null; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check fbpic pyfftw numba scipy h5py numpy
fi
cargo build --profile ci --bin colop
COLOP="$(realpath "${CARGO_TARGET_DIR:-target}/ci/colop")"
rm -rf "$OUT" && mkdir -p "$OUT"
echo "== fbpic: $STEPS steps, particle dumps every $PERIOD"
t0=$(date +%s)
(cd "$OUT" && MKL_NUM_THREADS=1 OMP_NUM_THREADS=2 NUMBA_NUM_THREADS=2 "$OLDPWD/$VENV/bin/python" \
  "$OLDPWD/scripts/fbpic/warm_plasma.py" "$STEPS" "$PERIOD")
echo "   fbpic took $(( $(date +%s) - t0 )) s"
OMEGA_P=$(python3 -c "import math; print(math.sqrt(1e24*1.602176634e-19**2/(8.8541878128e-12*9.1093837015e-31)))")
echo "== import (test species; v_th measured on the background electrons)"
t0=$(date +%s)
$COLOP import openpmd "$OUT/diags/hdf5/data%08T.h5" --species test --v-th-from electrons \
  --omega-p "$OMEGA_P" --bins 32 --v-range 6 --tracks 200 --params ppc=16 --out "$OUT/test.h5"
echo "   import took $(( $(date +%s) - t0 )) s"
echo "== train (configs/fbpic.yaml)"
$COLOP train configs/fbpic.yaml --out "$OUT/train"
echo "== eval"
$COLOP eval "$OUT/train" --data "$OUT/test.h5" --i-start 0 --out "$OUT/eval.json" --plots "$OUT/eval"
echo "== done in $(( $(date +%s) - start )) s: $OUT/test.h5, $OUT/train/model.h5, $OUT/eval.json"
