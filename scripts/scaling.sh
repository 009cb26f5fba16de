#!/usr/bin/env bash
# Strong and weak scaling sweeps of `colop train` over rank counts, collected into CSV.
#   scripts/scaling.sh [options] CONFIG OUT_DIR
#     --ranks "1 2 4"      rank counts (default "1 2")
#     --mode strong|weak|both   (default both)
#     --threads T          rayon threads per rank (default 1)
#     --launcher mpirun|srun    (default: srun inside a Slurm allocation, else mpirun)
# CONFIG may hold placeholders: `{{ranks}}` and `{{N*ranks}}` (N times the rank count), e.g. for
# a window or run count, and `{{ranks:ITEM}}` / `{{N*ranks:ITEM}}` (ITEM repeated that many
# times, comma-separated, e.g. a run file in a `train: [...]` list; see configs/scaling.yaml). Weak scaling replaces them with the rank count P, so the work per rank
# stays constant; strong scaling trains the 1-rank problem (P = 1) at every rank count. A
# config without placeholders is used as it is by both.
# Writes OUT_DIR/<mode>-<ranks>/ (run directories), OUT_DIR/scaling_epochs.csv (one row per
# epoch: mode, ranks, threads, epoch, epoch_s, compute_s, comm_s, compute_s_max, compute_s_min,
# comm_s_min) and OUT_DIR/scaling_summary.csv (per mode and rank count, the first 10% of epochs
# left out as warm-up: mean epoch time, compute, time in collectives and its share, the
# collectives alone (comm_s_min: the last rank to arrive waits for nobody) and their share,
# imbalance max/min compute, efficiency).
# COLOP selects the binary (default: colop on PATH, else target/release/colop).
set -euo pipefail

ranks_list="1 2"; mode=both; threads=1; launcher=""
while [ $# -gt 0 ]; do
  case "$1" in
    --ranks) ranks_list="$2"; shift 2 ;;
    --mode) mode="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --launcher) launcher="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "scaling.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -eq 2 ] || { echo "usage: scripts/scaling.sh [--ranks \"1 2 4\"] [--mode strong|weak|both] [--threads T] CONFIG OUT_DIR" >&2; exit 2; }
CONFIG="$1"; OUT="$2"
[ -f "$CONFIG" ] || { echo "scaling.sh: $CONFIG: no such file" >&2; exit 2; }
case "$mode" in strong) modes=(strong) ;; weak) modes=(weak) ;; both) modes=(strong weak) ;;
  *) echo "scaling.sh: --mode must be strong, weak or both" >&2; exit 2 ;; esac
if [ -z "${COLOP:-}" ]; then
  if command -v colop >/dev/null 2>&1; then COLOP=colop
  else COLOP="$(cd "$(dirname "$0")/.." && pwd)/target/release/colop"; fi
fi
if [ -z "$launcher" ]; then
  if [ -n "${SLURM_JOB_ID:-}" ]; then launcher=srun; else launcher=mpirun; fi
fi
export RAYON_NUM_THREADS="$threads"
export OMPI_MCA_rmaps_base_oversubscribe=1
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
mkdir -p "$OUT"

CONFIG_DIR="$(cd "$(dirname "$CONFIG")" && pwd)"
# The configuration for problem size P: {{ranks}} → P, {{N*ranks}} → N·P. Relative paths keep
# resolving against the original config's directory (`base_dir`).
weak_config() {
  render "$1"
  grep -q '^base_dir:' "$CONFIG" || echo "base_dir: $CONFIG_DIR"
}
render() {
  awk -v p="$1" '
    # {{N*ranks:ITEM}} / {{ranks:ITEM}} → ITEM repeated N·P times, comma-separated.
    function repeat(item, n,   out, i) { out = item; for (i = 2; i <= n; i++) out = out ", " item; return out }
    {
      while (match($0, /\{\{([0-9]+\*)?ranks(:[^}]*)?\}\}/)) {
        token = substr($0, RSTART + 2, RLENGTH - 4)
        n = p
        if (token ~ /^[0-9]+\*/) { n = substr(token, 1, index(token, "*") - 1) * p; token = substr(token, index(token, "*") + 1) }
        rep = n
        if (index(token, ":") > 0) rep = repeat(substr(token, index(token, ":") + 1), n)
        $0 = substr($0, 1, RSTART - 1) rep substr($0, RSTART + RLENGTH)
      }
      print
    }' "$CONFIG"
}

# A numeric key of a flat JSON line ("" when absent).
json_number() { grep -o "\"$1\":[^,}]*" <<<"$2" | head -n 1 | cut -d: -f2 | tr -d ' "' || true; }

EPOCHS="$OUT/scaling_epochs.csv"
echo "mode,ranks,threads,epoch,epoch_s,compute_s,comm_s,compute_s_max,compute_s_min,comm_s_min" >"$EPOCHS.tmp"
for m in "${modes[@]}"; do
  for p in $ranks_list; do
    run="$OUT/$m-$p"
    rm -rf "$run"
    config="$OUT/$m-$p.yaml"
    if [ "$m" = weak ]; then weak_config "$p" >"$config"; else weak_config 1 >"$config"; fi
    case "$launcher" in
      srun) launch=(srun --mpi=pmix --kill-on-bad-exit=1 --ntasks="$p" --cpus-per-task="$threads") ;;
      mpirun) launch=(mpirun -n "$p" --bind-to none -x RAYON_NUM_THREADS) ;;
      *) echo "scaling.sh: --launcher must be mpirun or srun" >&2; exit 2 ;;
    esac
    echo "scaling.sh: $m scaling, $p rank(s) × $threads thread(s)"
    "${launch[@]}" "$COLOP" train "$config" --out "$run" >"$OUT/$m-$p.log" 2>&1 \
      || { echo "scaling.sh: run failed, see $OUT/$m-$p.log" >&2; tail -n 5 "$OUT/$m-$p.log" >&2; exit 1; }
    while IFS= read -r line; do
      [ -n "$line" ] || continue
      row="$m,$p,$threads"
      for key in epoch epoch_s compute_s comm_s compute_s_max compute_s_min comm_s_min; do
        row="$row,$(json_number "$key" "$line")"
      done
      echo "$row" >>"$EPOCHS.tmp"
    done <"$run/metrics.jsonl"
  done
done
mv "$EPOCHS.tmp" "$EPOCHS"

# Summary: the first 10% of each run's epochs (at least one, unless it is the only one) are
# warm-up and left out.
awk -F, 'NR > 1 { key = $1 "," $2 "," $3; total[key]++ }
  END { for (k in total) print k "," total[k] }' "$EPOCHS" >"$OUT/summary.counts"
awk -F, 'FNR == NR { skip[$1 "," $2 "," $3] = ($4 > 1 ? int(($4 + 9) / 10) : 0); next }
  FNR > 1 {
    key = $1 "," $2 "," $3; seen[key]++
    if (seen[key] <= skip[key]) next
    m[key]++; t[key] += $5; c[key] += $6; r[key] += $7; a[key] += $10
    if ($9 > 0) imb[key] += $8 / $9; else imb[key] += 1
  }
  END {
    for (key in m)
      printf "%s,%d,%.6g,%.6g,%.6g,%.4f,%.6g,%.4f,%.4f\n", key, m[key], t[key]/m[key], c[key]/m[key], r[key]/m[key],
        (t[key] > 0 ? r[key]/t[key] : 0), a[key]/m[key], (t[key] > 0 ? a[key]/t[key] : 0), imb[key]/m[key]
  }' "$OUT/summary.counts" "$EPOCHS" | sort -t, -k1,1 -k2,2n >"$OUT/summary.body"
rm -f "$OUT/summary.counts"
# Efficiency against the 1-rank run of the same mode: strong T1/(P·TP), weak T1/TP.
{
  echo "mode,ranks,threads,epochs,epoch_s,compute_s,comm_s,comm_fraction,allreduce_s,allreduce_fraction,imbalance,efficiency"
  awk -F, '{ if ($2 == 1) t1[$1] = $5; row[NR] = $0; mode[NR] = $1; p[NR] = $2; t[NR] = $5 }
    END { for (i = 1; i <= NR; i++) {
      e = ""; if ((mode[i] in t1) && t[i] > 0) e = sprintf("%.4f", mode[i] == "strong" ? t1[mode[i]] / (p[i] * t[i]) : t1[mode[i]] / t[i])
      print row[i] "," e } }' "$OUT/summary.body"
} >"$OUT/scaling_summary.csv"
rm -f "$OUT/summary.body"
"$COLOP" -q plot "$OUT/scaling_summary.csv" --out "$OUT/scaling.png" >/dev/null || echo "scaling.sh: could not draw $OUT/scaling.png" >&2
echo "scaling.sh: wrote $EPOCHS, $OUT/scaling_summary.csv and $OUT/scaling.png"
column -s, -t "$OUT/scaling_summary.csv" 2>/dev/null || cat "$OUT/scaling_summary.csv"
