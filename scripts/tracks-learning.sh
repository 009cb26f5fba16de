#!/usr/bin/env bash
# Learning from particle tracks (`data.tracks`) against the Kramers–Moyal estimate of the same
# tracks and against the known operator:
#   scripts/tracks-learning.sh [OUT_DIR]        (default runs/tracks-learning)
# 1. Thermal PIC plasma (configs/study/pic-thermal-tracks.yaml: nλ_D² = 16, quadratic shapes,
#    100352 tracked self-consistent test particles, 101 dumps 1/ω_p apart). Reference:
#    `colop theory --pic`. Kramers–Moyal: `colop tracks` at lags 1, 2, 5, 10, 20, 50/ω_p. Learned:
#    par-perp from transition windows (configs/study/train-tracks.yaml) with the likelihood and
#    the mse loss and delays 0, 5, 10 dumps.
# 2. Synthetic tracks: `colop synth configs/synth-tracks.yaml` with 10⁵ particles in the thermal
#    run; reference: the run's /truth. Learned with both losses (delay 5); Kramers–Moyal at lags
#    1, 5 and 20.
# Each row: relative L2 deviation of A_∥, D_∥, D_⊥ over 0.3 ≤ |v| ≤ 3 v_th (the nodes of the
# operator's radial profile), the worst of the three and their rms, and for learned rows the wall time per
# epoch and the training's peak memory (max RSS). Writes OUT_DIR/tracks-learning.md and .csv.
# About 15 min on 2 cores. COLOP selects the binary (default: target/release/colop, built if
# missing). Needs python3 (h5py and numpy are installed into OUT_DIR/venv).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="${1:-runs/tracks-learning}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
if [ -z "${COLOP:-}" ]; then
  bash scripts/setup.sh
  cargo build --release --bin colop
  COLOP="$ROOT/target/release/colop"
fi
if [ ! -x "$OUT/venv/bin/python" ]; then
  python3 -m venv "$OUT/venv"
  "$OUT/venv/bin/pip" install -q h5py numpy
fi
PY="$OUT/venv/bin/python"
start=$(date +%s)

# measure NAME CMD...: run CMD, append "NAME wall_s max_rss_kb" to OUT/resources.txt.
measure() {
  local name="$1"; shift
  "$PY" - "$OUT/resources.txt" "$name" "$@" <<'PY'
import resource, subprocess, sys, time
out, name, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
t0 = time.time()
subprocess.run(cmd, check=True)
wall = time.time() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(out, "a") as f:
    f.write(f"{name} {wall:.2f} {rss}\n")
PY
}
touch "$OUT/resources.txt"   # kept across reruns: trainings already done are not rerun

# train_variant DIR NAME RUN DELAY LOSS STAGES: a copy of configs/study/train-tracks.yaml.
train_variant() {
  local dir="$1" name="$2" run="$3" delay="$4" loss="$5" stages="$6"
  sed -e "s|runs: \[ run.h5 \]|runs: [ $run ]|; s|delay: 10 |delay: $delay |; s|loss: likelihood |loss: $loss |" \
    configs/study/train-tracks.yaml >"$dir/$name.yaml"
  if [ -n "$stages" ]; then
    "$PY" - "$dir/$name.yaml" "$stages" <<'PY'
import re, sys
path, stages = sys.argv[1], sys.argv[2]
text = open(path).read()
text = re.sub(r"(?ms)^  stages:\n(    - .*\n)+", "  stages:\n" + "".join(f"    - {s.strip()}\n" for s in stages.split(";")), text)
open(path, "w").write(text)
PY
  fi
  if [ ! -f "$dir/$name/model.h5" ]; then
    echo "== train $name"
    measure "$name" "$COLOP" -q train "$dir/$name.yaml" --out "$dir/$name" --restart
  fi
}

# 1. PIC
PIC="$OUT/pic"
mkdir -p "$PIC"
cp configs/study/pic-thermal-tracks.yaml "$PIC/pic.yaml"
[ -f "$PIC/run.h5" ] || { echo "== PIC run"; "$COLOP" -q pic "$PIC/pic.yaml" --out "$PIC/run.h5"; }
[ -f "$PIC/theory/model.h5" ] || { echo "== theory --pic"; "$COLOP" -q theory --pic "$PIC/pic.yaml" --alias-tol 1e-2 --dv 0.1 --v-max 3.2 --out "$PIC/theory"; }
[ -f "$PIC/tracks/summary.json" ] || { echo "== tracks"; "$COLOP" -q tracks "$PIC/run.h5" --lag 1 2 5 10 20 50 --stride 1 --out "$PIC/tracks"; }
PIC_VARIANTS="likelihood:0 likelihood:5 likelihood:10 mse:10"
for v in $PIC_VARIANTS; do
  train_variant "$PIC" "pic-${v%%:*}-d${v##*:}" run.h5 "${v##*:}" "${v%%:*}" ""
done

# 2. Synthetic
SYN="$OUT/synth"
mkdir -p "$SYN"
sed -e 's/tracks: { n: 20000,/tracks: { n: 100000,/' configs/synth-tracks.yaml >"$SYN/synth.yaml"
[ -f "$SYN/data/thermal.h5" ] || { echo "== synth"; "$COLOP" -q synth "$SYN/synth.yaml" --out "$SYN/data"; }
[ -f "$SYN/tracks/summary.json" ] || { echo "== tracks (synthetic)"; "$COLOP" -q tracks "$SYN/data/thermal.h5" --lag 1 5 20 --stride 1 --out "$SYN/tracks"; }
SYN_STAGES="{ unroll: all, epochs: 300, lr: 1.0e-2 };{ unroll: all, epochs: 300, lr: 2.0e-3 }"
for loss in likelihood mse; do
  train_variant "$SYN" "synth-$loss-d5" data/thermal.h5 5 "$loss" "$SYN_STAGES"
done

"$PY" - "$OUT" "$PIC_VARIANTS" <<'PY'
import h5py, json, numpy as np, os, sys
out, pic_variants = sys.argv[1], sys.argv[2].split()
V = (0.3, 3.0)
res = {}
for line in open(os.path.join(out, "resources.txt")):
    name, wall, rss = line.split()
    res[name] = (float(wall), int(rss))

def profile_csv(path):
    data = np.genfromtxt(path, delimiter=",", names=True)
    return data["v"], {k: data[k] for k in ("A_par", "D_par", "D_perp")}

def exports(model):
    with h5py.File(model) as h:
        e = h["exports"]
        return e["v_radial"][:], {k: e[k][:] for k in ("A_par", "D_par", "D_perp")}

def truth(run):
    with h5py.File(run) as h:
        t = h["truth"]
        return t["v_radial"][:], {k: t[k][:] for k in ("A_par", "D_par", "D_perp")}

def deviation(model, ref):
    v, m = exports(model)
    rv, r = ref
    sel = (v >= V[0]) & (v <= V[1])
    out = []
    for k in ("A_par", "D_par", "D_perp"):
        x = m[k][sel]
        t = np.interp(v[sel], rv, r[k])
        out.append(float(np.sqrt(((x - t) ** 2).sum() / (t ** 2).sum())))
    return out

def epoch_s(run_dir):
    rows = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    return float(np.mean([r["epoch_s"] for r in rows]))

rows = []
def add(case, label, model, ref, run_dir=None, name=None):
    d = deviation(model, ref)
    t = epoch_s(run_dir) if run_dir else None
    mem = res[name][1] / 1024 if name in res else None
    rows.append((case, label, *d, max(d), float(np.sqrt(np.mean(np.square(d)))), t, mem))

pic = os.path.join(out, "pic")
theory = profile_csv(os.path.join(pic, "theory", "coefficients.csv"))
for lag in (1, 2, 5, 10, 20, 50):
    add("PIC", f"Kramers–Moyal τ = {lag}/ω_p", os.path.join(pic, "tracks", f"tau_{lag}", "model.h5"), theory)
for v in pic_variants:
    loss, delay = v.split(":")
    name = f"pic-{loss}-d{delay}"
    add("PIC", f"learned, {loss}, delay {delay}, K = 20", os.path.join(pic, name, "model.h5"), theory, os.path.join(pic, name), name)
syn = os.path.join(out, "synth")
ref = truth(os.path.join(syn, "data", "thermal.h5"))
for lag in (1, 5, 20):
    add("synthetic", f"Kramers–Moyal τ = {lag}/ω_p", os.path.join(syn, "tracks", f"tau_{lag}", "model.h5"), ref)
for loss in ("likelihood", "mse"):
    name = f"synth-{loss}-d5"
    add("synthetic", f"learned, {loss}, delay 5, K = 20", os.path.join(syn, name, "model.h5"), ref, os.path.join(syn, name), name)

pct = lambda x: f"{100 * x:.2f}%"
md = ["# Learning from particle tracks", "",
      f"Relative L2 deviation over {V[0]} ≤ |v| ≤ {V[1]} v_th from the reference: `colop theory --pic` (PIC), the known operator (synthetic).", "",
      "| data | operator | A_∥ | D_∥ | D_⊥ | worst | rms of the three | s/epoch | peak memory (MiB) |", "|---|---|---|---|---|---|---|---|---|"]
with open(os.path.join(out, "tracks-learning.csv"), "w") as csv:
    csv.write("data,operator,A_par,D_par,D_perp,worst,rms,epoch_s,peak_mib\n")
    for case, label, a, dp, dq, worst, rms, t, mem in rows:
        md.append(f"| {case} | {label} | {pct(a)} | {pct(dp)} | {pct(dq)} | {pct(worst)} | {pct(rms)} | {'' if t is None else f'{t:.3f}'} | {'' if mem is None else f'{mem:.0f}'} |")
        csv.write(f"{case},\"{label}\",{a},{dp},{dq},{worst},{rms},{'' if t is None else t},{'' if mem is None else mem}\n")
text = "\n".join(md) + "\n"
open(os.path.join(out, "tracks-learning.md"), "w").write(text)
print(text)
PY
echo "tracks-learning: $(( $(date +%s) - start )) s; table in $OUT/tracks-learning.md"
