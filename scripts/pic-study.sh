#!/usr/bin/env bash
# The learned operator against particle tracks and kinetic theory, on the built-in PIC code:
#   scripts/pic-study.sh [OUT_DIR]        (default runs/pic-study; about an hour on 2 cores)
# 1. three PIC runs (configs/study/pic-*.yaml) of 3·10⁵ self-consistent test electrons in a
#    thermal plasma, nλ_D² = 16, Δx = λ_D, quadratic shapes, 100 dumps 1/ω_p apart: a fast
#    drifting blob (trained on, with particle tracks), a slow blob (trained on) and a ring
#    (held out); existing run files are reused;
# 2. the Lenard–Balescu coefficients for that plasma (colop theory);
# 3. track estimates at lags 1–50/ω_p from the blob (colop tracks);
# 4. a par-perp operator learned from the blobs' histograms (configs/study/train.yaml);
# 5. colop compare on the three runs: profiles against the theory over 0.5 ≤ |v| ≤ 3 v_th, rollout
#    errors, moments, and the data each needed (OUT_DIR/compare/compare.md).
# COLOP selects the binary (default: target/release/colop, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/pic-study}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
if [ -z "${COLOP:-}" ]; then
  bash scripts/setup.sh
  cargo build --release --bin colop
  COLOP="$PWD/target/release/colop"
fi
start=$(date +%s)
for run in blob slow ring; do
  if [ -f "$OUT/$run.h5" ]; then
    echo "== $OUT/$run.h5 exists: reused"
  else
    echo "== PIC run $run (configs/study/pic-$run.yaml)"
    "$COLOP" pic "configs/study/pic-$run.yaml" --out "$OUT/$run.h5"
  fi
done
echo "== theory"
"$COLOP" theory --n-lambda-d2 16 --shape 2 --dx 1 --like "$OUT/blob.h5" --out "$OUT/theory"
echo "== particle tracks"
"$COLOP" tracks "$OUT/blob.h5" --lag 1 2 5 10 20 50 --out "$OUT/tracks"
echo "== learning a par-perp operator from the blobs' histograms"
{ cat configs/study/train.yaml; echo "base_dir: $OUT"; } >"$OUT/train.yaml"
rm -rf "$OUT/learned"
"$COLOP" train "$OUT/train.yaml" --out "$OUT/learned"
echo "== comparison"
"$COLOP" compare "$OUT/learned" "$OUT/tracks" "$OUT/theory" --data "$OUT/ring.h5" "$OUT/blob.h5" "$OUT/slow.h5" \
  --i-start 5 --v-window 0.5 3.0 --out "$OUT/compare" >/dev/null
cat "$OUT/compare/compare.md"
echo
echo "pic-study: done in $(( $(date +%s) - start )) s; figures and tables in $OUT/compare/"
