#!/usr/bin/env bash
# Batch prediction of the 2M-row synthetic set (../shared/bench's synth2m), meshml against
# scikit-learn in one process (../shared/bench/bench_predict.py), in one run.
# meshml: two `meshml node` processes on loopback, the model fitted on the mesh (synth200k
# train), synth2m stored with one copy of each chunk (so each node holds half), then
# `meshml predict --out` times the batch: every chunk predicted where it is stored, the
# predictions written in row order to a CSV and downloaded. Not timed: fitting, storing.
#
#   MODELS="lr rf" bash tools/bench_batch.sh      # default: lr
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PEERS=${PEERS:-/tmp/peers}
PY=$PEERS/venv/bin/python
DATA=${PEERS_DATA:-$PEERS/data}
BENCH=${PEERS_BENCH:-$ROOT/../shared/bench}
MODELS=${MODELS:-lr}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

cargo build --release -p meshml-node --bin meshml --quiet
BIN=$ROOT/target/release/meshml
A=http://127.0.0.1:7490

"$BIN" node --data-dir "$WORK/a" --listen /ip4/127.0.0.1/tcp/7491 --http 127.0.0.1:7490 \
  --no-mdns --expect 2 > "$WORK/a.log" 2>&1 &
for _ in $(seq 100); do grep -q "/p2p/" "$WORK/a.log" 2>/dev/null && break; sleep 0.2; done
BOOT=$(grep -o '/ip4/127.0.0.1/tcp/7491/p2p/[A-Za-z0-9]*' "$WORK/a.log" | head -1)
"$BIN" node --data-dir "$WORK/b" --listen /ip4/127.0.0.1/tcp/7493 --http 127.0.0.1:7492 \
  --no-mdns --expect 2 --bootstrap "$BOOT" > "$WORK/b.log" 2>&1 &
for _ in $(seq 150); do
  "$BIN" status --node $A 2>/dev/null | grep -q "driver" && break; sleep 0.2
done
sleep 2
"$BIN" dataset put "$DATA/synth200k_train.csv" --name train --replicas 2 --node $A > /dev/null
t=$(date +%s.%N)
"$BIN" dataset put "$DATA/synth2m.csv" --name big --replicas 1 --chunk-rows 100000 --node $A > /dev/null
echo "stored synth2m in $(echo "$(date +%s.%N) - $t" | bc) s (not timed below)"
for m in $MODELS; do
  case $m in
    lr) "$BIN" fit --dataset train --model logistic_regression --set max_iter=1000 --name lr --node $A > /dev/null ;;
    rf) "$BIN" fit --dataset train --model random_forest --set n_estimators=100 --set random_state=0 --name rf --node $A > /dev/null ;;
  esac
  for run in 1 2; do
    t=$(date +%s.%N)
    "$BIN" predict --model $m --dataset big --out "$WORK/preds.csv" --node $A
    echo "meshml $m run $run: $(echo "$(date +%s.%N) - $t" | bc) s wall, $(($(wc -l < "$WORK/preds.csv") - 1)) rows"
    (cd "$BENCH" && "$PY" bench_predict.py --tool sklearn --model $m) | tail -1
  done
done
