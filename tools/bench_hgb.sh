#!/usr/bin/env bash
# Gradient-boosted trees, meshml against scikit-learn's HistGradientBoostingClassifier and
# LightGBM (../shared/bench/bench_hgb.py, 2 threads each), in the same run: 100 rounds,
# learning rate 0.1, 31 leaves, 20 rows a leaf, 255 bins, no early stopping, on synth200k
# (160k x 50, 10 classes) and breast_cancer (binary). Tools alternate within each round;
# medians and ratios are printed (prediction: the test part, timed apart), raw JSON lines go to $OUT (default
# /tmp/meshml-bench/hgb.jsonl).
#
#   bash ../shared/bench/setup.sh && /tmp/peers/venv/bin/python ../shared/bench/make_data.py
#   bash tools/bench_hgb.sh [REPEATS] [DATASETS...]
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${1:-3}
shift || true
DATASETS=${*:-synth200k breast_cancer}
DATA=${PEERS_DATA:-/tmp/peers/data}
PY=${PEERS_PY:-/tmp/peers/venv/bin/python}
BENCH=${PEERS_BENCH:-../shared/bench}
OUT=${OUT:-/tmp/meshml-bench/hgb.jsonl}
mkdir -p "$(dirname "$OUT")"; : > "$OUT"

cargo build --release -p meshml-models --example fit_timing --quiet
BIN=$PWD/target/release/examples/fit_timing

for ds in $DATASETS; do
  tr="$DATA/${ds}_train.csv"; te="$DATA/${ds}_test.csv"
  [ -f "$tr" ] || { echo "missing $tr: run ../shared/bench/make_data.py" >&2; exit 1; }
  for ((r = 0; r < REPEATS; r++)); do
    "$BIN" "$tr" "$te" "$ds" hist_gradient_boosting_classifier 1 max_iter=100 \
      learning_rate=0.1 max_leaf_nodes=31 min_samples_leaf=20 max_bins=255 \
      early_stopping=false random_state=0 >> "$OUT"
    for tool in sklearn lightgbm; do
      (cd "$BENCH" && "$PY" bench_hgb.py --tool "$tool" --dataset "$ds" --threads 2) \
        | grep '^{' >> "$OUT"
    done
  done
done

"$PY" - "$OUT" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| dataset | tool | median fit s | median predict s (test rows) | accuracy | runs |")
print("|---|---|---|---|---|---|")
med = {}
for ds in dict.fromkeys(r["dataset"] for r in rows):
    for tool in ("meshml", "lightgbm", "sklearn"):
        r = [x for x in rows if x["dataset"] == ds and x["tool"] == tool]
        if not r:
            continue
        m = statistics.median(x["fit_s"] for x in r)
        p = statistics.median(x["predict_s"] for x in r)
        med[ds, tool] = m
        print(f"| {ds} | {tool} | {m:.3f} | {p:.4f} | {r[0]['accuracy']:.4f} | {len(r)} |")
for (ds, tool), m in med.items():
    if tool != "meshml" and (ds, "meshml") in med:
        print(f"{ds}: meshml / {tool} fit time = {med[ds, 'meshml'] / m:.2f}")
PYEOF
