#!/usr/bin/env bash
# Particle-track estimates against the Lenard–Balescu theory on the built-in PIC code: the two
# findings of the README's "Learned operators, particle tracks and kinetic theory" that
# scripts/pic-study.sh does not cover.
#   scripts/tracks-study.sh [OUT_DIR]        (default runs/tracks-study)
# 1. Quiver: thermal tracers at nλ_D² = 16 and 64 (configs/study/quiver-16.yaml, quiver-64.yaml),
#    track estimates at lags 1–60/ω_p, and D(τ)/D_LB per lag.
# 2. Test particles are plasma: the self-consistent fast blob in a 512² box (7% of the electrons,
#    configs/study/pic-blob-512.yaml) and in the 1024² box of pic-study (1.8%,
#    configs/study/pic-blob.yaml; OUT_DIR/blob.h5 is reused if present, e.g. copied from a
#    pic-study directory), D/D_LB at lag 50/ω_p.
# D/D_LB is the mean over the radial nodes with 0.5 ≤ |v| ≤ 3 v_th (V_WINDOW="0.5 3") of the
# track-estimated profile over the theory's (`colop plot` writes each profile to profiles.json).
# Cost: 2 quiver runs of 4.2M and 1.0M electrons × 2000 steps, 2 blob runs of 4.2M and 16.8M
# electrons × 1000 steps: about 1–2 h on 2 cores. SIZE=tiny shrinks every box to 32² and the
# test particles to 2000 (seconds; checks the pipeline, the numbers mean nothing).
# COLOP selects the binary (default: target/release/colop, built if missing). Needs python3.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/tracks-study}"
SIZE="${SIZE:-full}"
V_WINDOW="${V_WINDOW:-0.5 3}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
if [ -z "${COLOP:-}" ]; then
  bash scripts/setup.sh
  cargo build --release --bin colop
  COLOP="$PWD/target/release/colop"
fi
start=$(date +%s)

# The config of a run at the chosen size.
config() {
  case "$SIZE" in
    full) cat "$1" ;;
    tiny) sed -E 's/nx: [0-9]+, ny: [0-9]+/nx: 32, ny: 32/; s/^  n: [0-9]+/  n: 2000/; s/tracks: [0-9]+/tracks: 2000/' "$1" ;;
    *) echo "SIZE must be full or tiny" >&2; exit 2 ;;
  esac
}

# pic_run NAME CONFIG: OUT/NAME.h5, reused when it exists.
pic_run() {
  if [ -f "$OUT/$1.h5" ]; then
    echo "== $OUT/$1.h5 exists: reused"
  else
    echo "== PIC run $1 ($2, size $SIZE)"
    config "$2" >"$OUT/$1.yaml"
    "$COLOP" pic "$OUT/$1.yaml" --out "$OUT/$1.h5"
  fi
}

# ratios NAME THEORY_DIR LAG...: one line per lag, D_par and D_perp over the theory.
ratios() {
  local name="$1" theory="$2"
  shift 2
  for tau in "$@"; do
    "$COLOP" -q plot "$OUT/tracks-$name/tau_$tau/model.h5" --out "$OUT/tracks-$name/tau_$tau/plots" >/dev/null
  done
  python3 - "$OUT/tracks-$name" "$theory/coefficients.csv" "$V_WINDOW" "$name" "$@" <<'PY'
import csv, json, sys
tracks, theory_csv, window, name, lags = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
lo, hi = map(float, window.split())
rows = list(csv.DictReader(open(theory_csv)))
tv = [float(r["v"]) for r in rows]
def interp(col, x):
    ys = [float(r[col]) for r in rows]
    for i in range(1, len(tv)):
        if x <= tv[i]:
            w = (x - tv[i - 1]) / (tv[i] - tv[i - 1])
            return ys[i - 1] + w * (ys[i] - ys[i - 1])
    return ys[-1]
for tau in lags:
    curve = json.load(open(f"{tracks}/tau_{tau}/plots/profiles.json"))["curves"][0]
    out = []
    for col in ("D_par", "D_perp"):
        r = [y / interp(col, x) for x, y in zip(curve["v"], curve[col]) if y is not None and lo <= x <= hi and interp(col, x) > 0]
        out.append(f"{sum(r) / len(r):.3f}" if r else "n/a")
    print(f"| {name} | {tau} | {out[0]} | {out[1]} |")
PY
}

QUIVER_LAGS="1 2 5 10 20 50 60"
table="$OUT/tracks-study.md"
{
  echo "# Track estimates over the Lenard–Balescu theory ($SIZE size, ${V_WINDOW/ / ≤ |v| ≤ } v_th)"
  echo
  echo "| run | τ (1/ω_p) | D_par/D_LB | D_perp/D_LB |"
  echo "|---|---|---|---|"
} >"$table"
for n in 16 64; do
  pic_run "quiver-$n" "configs/study/quiver-$n.yaml"
  echo "== theory and tracks, nλ_D² = $n"
  "$COLOP" -q theory --n-lambda-d2 "$n" --shape 2 --dx 1 --like "$OUT/quiver-$n.h5" --out "$OUT/theory-$n"
  # shellcheck disable=SC2086
  "$COLOP" -q tracks "$OUT/quiver-$n.h5" --lag $QUIVER_LAGS --out "$OUT/tracks-quiver-$n"
  # shellcheck disable=SC2086
  ratios "quiver-$n" "$OUT/theory-$n" $QUIVER_LAGS >>"$table"
done
pic_run blob-512 configs/study/pic-blob-512.yaml
pic_run blob configs/study/pic-blob.yaml
"$COLOP" -q theory --n-lambda-d2 16 --shape 2 --dx 1 --like "$OUT/blob.h5" --out "$OUT/theory-blob"
for run in blob-512 blob; do
  echo "== tracks, $run"
  "$COLOP" -q tracks "$OUT/$run.h5" --lag 50 --out "$OUT/tracks-$run"
  ratios "$run" "$OUT/theory-blob" 50 >>"$table"
done
cat "$table"
echo
echo "tracks-study: done in $(( $(date +%s) - start )) s; table in $table"
