#!/usr/bin/env bash
# Online prediction: single-row requests to a meshml node and to a FastAPI + scikit-learn
# server (tools/serve_fastapi.py), the same LogisticRegression (synth200k, 50 features, 10
# classes), measured the same way by wrk on loopback (one wrk thread, CONNS connections,
# DURATION each). Needs wrk (Debian package) and fastapi + uvicorn in the peers' venv:
#
#   apt-get install -y wrk && /tmp/peers/venv/bin/pip install fastapi uvicorn
#   bash tools/bench_serve.sh            # ~2 min
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PEERS=${PEERS:-/tmp/peers}
PY=$PEERS/venv/bin/python
DATA=${PEERS_DATA:-$PEERS/data}
CONNS=${CONNS:-16}
DURATION=${DURATION:-10s}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

cargo build --release -p meshml-node --bin meshml --quiet
BIN=$ROOT/target/release/meshml

# One row of the test set, as a JSON request body, and a wrk script that posts it.
ROW=$(sed -n 2p "$DATA/synth200k_test.csv" | cut -d, -f1-50)
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"instances": [[$ROW]]}'
wrk.headers["Content-Type"] = "application/json"
LUA

# meshml: one node, the model fitted through it.
"$BIN" node --data-dir "$WORK/node" --listen /ip4/127.0.0.1/tcp/7391 --http 127.0.0.1:7390 \
  --no-mdns > "$WORK/node.log" 2>&1 &
for _ in $(seq 100); do curl -sf http://127.0.0.1:7390/v1/health > /dev/null && break; sleep 0.2; done
"$BIN" dataset put "$DATA/synth200k_train.csv" --name train --replicas 1 --node http://127.0.0.1:7390 > /dev/null
"$BIN" fit --dataset train --model logistic_regression --set max_iter=1000 --name lr \
  --node http://127.0.0.1:7390 > /dev/null
curl -sf -X POST -H 'Content-Type: application/json' -d "{\"instances\": [[$ROW]]}" \
  http://127.0.0.1:7390/v1/models/lr/predict > /dev/null   # load the model
echo "== meshml node ($CONNS connections)"
wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$WORK/post.lua" http://127.0.0.1:7390/v1/models/lr/predict
kill %1; wait %1 2>/dev/null || true

for workers in 1 2; do
  (cd tools && exec "$PY" serve_fastapi.py 7392 $workers > "$WORK/fastapi.log" 2>&1) &
  for _ in $(seq 300); do
    curl -sf -X POST -H 'Content-Type: application/json' -d "{\"instances\": [[$ROW]]}" \
      http://127.0.0.1:7392/v1/models/lr/predict > /dev/null 2>&1 && break
    sleep 0.2
  done
  echo "== FastAPI + scikit-learn, uvicorn workers=$workers ($CONNS connections)"
  wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$WORK/post.lua" http://127.0.0.1:7392/v1/models/lr/predict
  pkill -f "serve_fastapi.py 7392" || true; wait 2>/dev/null || true; sleep 1
done
