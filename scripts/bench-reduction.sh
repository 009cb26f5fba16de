#!/usr/bin/env bash
# The per-element cost of the exact reduction (dist::ExactSum) as quoted in the README, as a range
# over repeated runs of `colop bench --what reduction` on one process, with the CPU it ran on.
#   scripts/bench-reduction.sh [RUNS]        (default 5 runs; seconds each)
# COLOP selects the binary (default: target/release/colop, built if missing). Needs python3.
# Timings move with the machine's load: run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-5}"
if [ -z "${COLOP:-}" ]; then
  bash scripts/setup.sh
  cargo build --release --bin colop
  COLOP="$PWD/target/release/colop"
fi
cpu="$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
echo "CPU: ${cpu:-unknown} ($(nproc) cores visible); $RUNS runs, --threads 1"
for _ in $(seq "$RUNS"); do
  COLOP_MPI=0 "$COLOP" -q --threads 1 bench --what reduction
done | python3 -c '
import json, sys
dec = json.JSONDecoder()
text, runs = sys.stdin.read(), []
i = 0
while i < len(text):
    if text[i].isspace():
        i += 1
        continue
    obj, i = dec.raw_decode(text, i)
    runs.append(obj["reduction"])
for key in ["plain_add_ns_per_element", "exact_add_ns_per_element", "exact_merge_ns_per_element", "to_f64_ns_per_element"]:
    v = [r[key] for r in runs]
    print(f"{key}: {min(v):.2f}–{max(v):.2f} ns")
'
