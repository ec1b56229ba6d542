#!/usr/bin/env bash
# Data-parallel logistic regression on synth2m (2M x 50, 10 classes) against the peers of
# ../shared/bench/bench_bigfit.py, in one run: a 3-node meshml mesh on 127.0.0.1 (release
# build, one slot each, the dataset stored with 2 copies in 65,536-row chunks, each node's
# training memory 200 MiB, below the dataset's 389 MiB, so the fit runs data-parallel),
# scikit-learn lbfgs on all rows in memory (the accuracy reference), Spark MLlib on local[2]
# and scikit-learn's streamed SGD (3 epochs of partial_fit; meshml's sgd_classifier runs the
# same 3 epochs data-parallel), and dask-ml (binary only: class 0 against the rest). Every tool is scored on synth200k's test part. All on the
# same 2 cores; each record goes through the peers' runner.py.
#
#   bash ../shared/bench/setup.sh && /tmp/peers/venv/bin/python ../shared/bench/make_data.py
#   bash tools/bench_bigfit.sh               # ~10 min on 2 cores
#   ONLY='meshml' bash tools/bench_bigfit.sh
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BENCH=${PEERS_BENCH:-$ROOT/../shared/bench}
PEERS=${PEERS:-/tmp/peers}
V=$PEERS/venv/bin/python
OUT=${OUT:-/tmp/meshml-bench/bigfit.jsonl}
ONLY=${ONLY:-.}
WORK=${WORK:-/tmp/meshml-bench/bigfit}
DATA=${PEERS_DATA:-$PEERS/data}
MEM_MB=${MEM_MB:-200}
mkdir -p "$(dirname "$OUT")"; : > "$OUT"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 RAYON_NUM_THREADS=1
export SPARK_LOCAL_IP=127.0.0.1 PYTHONWARNINGS=ignore PEERS_DATA=$DATA

cargo build --release --quiet --bin meshml -p meshml-node
M=$ROOT/target/release/meshml

run() {
  local id=$1 cap=$2; shift 2
  [[ "$id" =~ $ONLY ]] || return 0
  echo "== $id" >&2
  (cd "$BENCH" && "$V" runner.py --id "$id" --timeout "$cap" --out "$OUT" --quiet-wait 20 -- "$@")
}

# --- the mesh ----------------------------------------------------------------------------
if [[ "meshml" =~ $ONLY ]]; then
  rm -rf "$WORK"; mkdir -p "$WORK"
  pids=()
  trap 'kill "${pids[@]}" 2>/dev/null' EXIT
  start() {
    local i=$1; shift
    "$M" node --data-dir "$WORK/n$i" --listen /ip4/127.0.0.1/tcp/$((17600 + i)) \
      --http 127.0.0.1:$((17680 + i)) --no-mdns --expect 3 --slots 1 \
      --train-memory-mb "$MEM_MB" "$@" > "$WORK/n$i.log" 2>&1 &
    pids+=($!)
  }
  start 0
  for _ in $(seq 50); do grep -q "^listening on" "$WORK/n0.log" && break; sleep 0.2; done
  BOOT=$(grep -m1 "^listening on /ip4/127.0.0.1" "$WORK/n0.log" | awk '{print $3}')
  start 1 --bootstrap "$BOOT"
  start 2 --bootstrap "$BOOT"
  NODE=http://127.0.0.1:17680
  for _ in $(seq 150); do "$M" status --node $NODE 2>/dev/null | grep -q "driver" && break; sleep 0.2; done
  sleep 2
  t0=$(date +%s.%N)
  "$M" dataset put "$DATA/synth2m.csv" --name synth2m --replicas 2 --chunk-rows 65536 --node $NODE | tail -1
  t1=$(date +%s.%N)
  echo "stored synth2m with 2 copies in $(python3 -c "print(round($t1-$t0,1))") s" >&2
  "$M" dataset put "$DATA/synth200k_test.csv" --name synth-test --replicas 2 --node $NODE | tail -1
  for i in 0 1 2; do
    echo "node $i peak RSS after storing: $(grep VmHWM /proc/${pids[$i]}/status | awk '{print $2, $3}')" >&2
  done
  run bigfit_meshml_mesh3 900 "$V" "$ROOT/tools/bigfit_meshml.py" "$M" "$NODE" synth2m synth-test
  # SGD at scikit-learn's streamed partial_fit's settings and epochs (bigfit_sklearn_sgd).
  run bigfit_meshml_sgd3 900 "$V" "$ROOT/tools/bigfit_meshml.py" "$M" "$NODE" synth2m synth-test \
    meshml-dp-sgd-mesh3 --model sgd_classifier --set loss=log_loss --set alpha=1e-5 \
    --set max_iter=3 --set tol=None --set random_state=0
  for i in 0 1 2; do
    echo "node $i peak RSS after the fit: $(grep VmHWM /proc/${pids[$i]}/status | awk '{print $2, $3}')" >&2
  done
  kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null
fi

# --- the peers ---------------------------------------------------------------------------
run bigfit_sklearn_lbfgs 900 "$V" bench_bigfit.py --tool sklearn-lbfgs
run bigfit_sparkml       900 "$V" bench_bigfit.py --tool sparkml --threads 2
run bigfit_sklearn_sgd   900 "$V" bench_bigfit.py --tool sklearn-sgd --epochs 3
run bigfit_daskml        900 "$V" bench_bigfit.py --tool daskml --threads 2

(cd "$BENCH" && "$V" summarize.py "$OUT")
