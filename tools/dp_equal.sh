#!/usr/bin/env bash
# Data-parallel fits over 3 nodes against in-memory fits of the same estimators on the same
# mesh dataset: synth200k's training part (160,000 x 50, 10 classes; ../shared/bench's
# make_data.py) stored with 2 copies in 20,000-row chunks on a 3-node mesh on 127.0.0.1
# (release build). Each estimator is fitted twice, `--data-parallel` and `--in-memory`;
# both artifacts are downloaded and tools/compare_models.py compares every number of the
# two models, asserting the tolerances of issue 17. SGD, whose data-parallel epochs average
# chunk models, is compared by test accuracy: data-parallel, in memory (scikit-learn's loop) and
# scikit-learn's SGDClassifier, over seeds.
#
#   bash ../shared/bench/setup.sh && /tmp/peers/venv/bin/python ../shared/bench/make_data.py
#   bash tools/dp_equal.sh          # ~10 min on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PEERS=${PEERS:-/tmp/peers}
V=$PEERS/venv/bin/python
DATA=${PEERS_DATA:-$PEERS/data}
WORK=${WORK:-/tmp/meshml-bench/dp-equal}
SEEDS=${SEEDS:-0 1 2 3 4}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 RAYON_NUM_THREADS=1

cargo build --release --quiet --bin meshml -p meshml-node
M=$ROOT/target/release/meshml
rm -rf "$WORK"; mkdir -p "$WORK"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
start() {
  local i=$1; shift
  "$M" node --data-dir "$WORK/n$i" --listen /ip4/127.0.0.1/tcp/$((17700 + i)) \
    --http 127.0.0.1:$((17780 + i)) --no-mdns --expect 3 --slots 1 "$@" > "$WORK/n$i.log" 2>&1 &
  pids+=($!)
}
start 0
for _ in $(seq 50); do grep -q "^listening on" "$WORK/n0.log" && break; sleep 0.2; done
BOOT=$(grep -m1 "^listening on /ip4/127.0.0.1" "$WORK/n0.log" | awk '{print $3}')
start 1 --bootstrap "$BOOT"
start 2 --bootstrap "$BOOT"
NODE=http://127.0.0.1:17780
for _ in $(seq 150); do "$M" status --node $NODE 2>/dev/null | grep -q "driver" && break; sleep 0.2; done
sleep 2
put() { "$M" dataset put "$@" --replicas 2 --chunk-rows 20000 --node $NODE | tail -1; }
put "$DATA/synth200k_train.csv" --name synth
put "$DATA/synth200k_test.csv" --name synth-test
put "$DATA/synth200k_train.csv" --name synth-reg --regression --target f49

fail=0
# both NAME DATASET 'PATH_PART=TOL ...' FIT_ARGS...: fit twice, compare the two models.
both() {
  local name=$1 dataset=$2 tols=$3; shift 3
  for mode in data-parallel in-memory; do
    local t0; t0=$(date +%s.%N)
    "$M" fit --node $NODE --dataset "$dataset" "$@" --"$mode" --name "$name-$mode" \
      > "$WORK/$name-$mode.out"
    grep -E "^mode:|passes over the data" "$WORK/$name-$mode.out" | sed "s/^/  $mode: /" || true
    echo "  $mode: $(python3 -c "import time; print(round(time.time()-$t0, 1))") s"
    "$M" model get "$name-$mode" --node $NODE --out "$WORK/$name-$mode.mlm" > /dev/null
  done
  echo "$name: data-parallel against in-memory (largest difference / scale of each list)"
  # shellcheck disable=SC2086
  "$V" tools/compare_models.py "$WORK/$name-data-parallel.mlm" "$WORK/$name-in-memory.mlm" $tols \
    || { echo "  FAILED: $name"; fail=1; }
}

both lr synth 'coef=1e-4 intercept=1e-4' --model logistic_regression --set max_iter=1000
both ols synth-reg 'coef=1e-6 intercept=1e-6' --model linear_regression
both ridge synth-reg 'coef=1e-6 intercept=1e-6' --model ridge --set alpha=10
both gnb synth 'theta=1e-6 var=1e-6 class_prior=1e-6' --model gaussian_nb
both pca-kmeans synth 'components=1e-4 centres=1e-6 theta=1e-6 var=1e-6' \
  --model standard_scaler+pca+kmeans+gaussian_nb --set n_components=10 --set n_clusters=8 \
  --set random_state=0
both kmeans synth 'centres=1e-6' --model kmeans --set n_clusters=10 --set random_state=0 \
  --test-dataset synth-test

echo "sgd_classifier (defaults: hinge, alpha=1e-4, max_iter=1000, tol=1e-3): test accuracy over seeds"
for s in $SEEDS; do
  for mode in data-parallel in-memory; do
    "$M" fit --node $NODE --dataset synth --model sgd_classifier --set random_state="$s" \
      --"$mode" --test-dataset synth-test > "$WORK/sgd-$mode-$s.out"
    echo "  meshml $mode, seed $s: $(grep -oE "accuracy on '[^']+': [0-9.]+" "$WORK/sgd-$mode-$s.out" | awk '{print $NF}')"
  done
done
"$V" - "$DATA" $SEEDS <<'PY'
import sys
import pandas as pd
from sklearn.linear_model import SGDClassifier
data, seeds = sys.argv[1], [int(s) for s in sys.argv[2:]]
tr, te = pd.read_csv(f"{data}/synth200k_train.csv"), pd.read_csv(f"{data}/synth200k_test.csv")
X, y, Xt, yt = tr.iloc[:, :-1].values, tr.iloc[:, -1].values, te.iloc[:, :-1].values, te.iloc[:, -1].values
for s in seeds:
    print(f"  scikit-learn SGDClassifier, seed {s}: {SGDClassifier(random_state=s).fit(X, y).score(Xt, yt):.4f}")
PY
exit $fail
