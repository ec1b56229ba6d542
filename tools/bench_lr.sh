#!/usr/bin/env bash
# LogisticRegression fit, meshml vs scikit-learn (single-threaded), on the same data in the
# same run: digits and the 200k x 50 synthetic set of ../shared/bench (train 160k / test 40k).
# Each tool fits REPEATS times per dataset, alternating tools per round; medians and the
# ratio are printed, raw JSON lines go to $OUT (default /tmp/meshml-bench/lr.jsonl).
#
#   bash ../shared/bench/setup.sh && /tmp/peers/venv/bin/python ../shared/bench/make_data.py
#   bash tools/bench_lr.sh [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${1:-5}
DATA=${PEERS_DATA:-/tmp/peers/data}
PY=${PEERS_PY:-/tmp/peers/venv/bin/python}
OUT=${OUT:-/tmp/meshml-bench/lr.jsonl}
mkdir -p "$(dirname "$OUT")"; : > "$OUT"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 RAYON_NUM_THREADS=1

cargo build --release -p meshml-models --example fit_timing --quiet
BIN=target/release/examples/fit_timing

for ds in digits synth200k; do
  tr="$DATA/${ds}_train.csv"; te="$DATA/${ds}_test.csv"
  [ -f "$tr" ] || { echo "missing $tr: run ../shared/bench/make_data.py" >&2; exit 1; }
  for ((r = 0; r < REPEATS; r++)); do
    "$PY" tools/bench_lr_sklearn.py "$tr" "$te" "$ds" 1 >> "$OUT"
    "$BIN" "$tr" "$te" "$ds" logistic_regression 1 max_iter=1000 >> "$OUT"
  done
done

"$PY" - "$OUT" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| dataset | tool | median fit s | accuracy | iterations | runs |")
print("|---|---|---|---|---|---|")
med = {}
for ds in ("digits", "synth200k"):
    for tool in ("sklearn", "meshml"):
        r = [x for x in rows if x["dataset"] == ds and x["tool"] == tool]
        if not r:
            continue
        m = statistics.median(x["fit_s"] for x in r)
        med[ds, tool] = m
        print(f"| {ds} | {tool} | {m:.4f} | {r[0]['accuracy']:.4f} | {r[0]['n_iter']} | {len(r)} |")
for ds in ("digits", "synth200k"):
    if (ds, "sklearn") in med and (ds, "meshml") in med:
        print(f"{ds}: meshml / scikit-learn fit time = {med[ds, 'meshml'] / med[ds, 'sklearn']:.2f}")
PYEOF
