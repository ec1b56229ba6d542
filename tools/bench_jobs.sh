#!/usr/bin/env bash
# Meta-estimator jobs, meshml against the peers of ../shared/bench in one run: grid search
# (LogisticRegression, C in 4 values, 5 folds) and one-vs-rest on digits and synth200k, and a
# random forest of 100 trees on synth200k. Peers: scikit-learn n_jobs=1 and 2, joblibspark
# and sk-dist on local[2], Dask-ML (2 workers). meshml: a mesh of two in-process nodes with
# one slot each (the same 2 cores), and the same plan on the local executor (2 threads).
# Every record goes through the peers' runner.py (wall time, CPU, contention); the tables
# come from their summarize.py.
#
#   bash ../shared/bench/setup.sh && /tmp/peers/venv/bin/python ../shared/bench/make_data.py
#   bash tools/bench_jobs.sh                  # ~20 min on 2 cores
#   ONLY='^gs_digits' bash tools/bench_jobs.sh
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BENCH=${PEERS_BENCH:-$ROOT/../shared/bench}
PEERS=${PEERS:-/tmp/peers}
V=$PEERS/venv/bin/python
VS=$PEERS/venv-skdist/bin/python
OUT=${OUT:-/tmp/meshml-bench/jobs.jsonl}
ONLY=${ONLY:-.}
mkdir -p "$(dirname "$OUT")"; : > "$OUT"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 RAYON_NUM_THREADS=1
export SPARK_LOCAL_IP=127.0.0.1 PYTHONWARNINGS=ignore PEERS_DATA=${PEERS_DATA:-$PEERS/data}

cargo build --release -p meshml-node --example job_bench --quiet
MESHML=$ROOT/target/release/examples/job_bench

run() {
  local id=$1 cap=$2; shift 2
  [[ "$id" =~ $ONLY ]] || return 0
  echo "== $id" >&2
  (cd "$BENCH" && "$V" runner.py --id "$id" --timeout "$cap" --out "$OUT" --quiet-wait 20 -- "$@")
}

for ds in digits synth200k; do
  cap=300; [ "$ds" = synth200k ] && cap=900
  run gs_${ds}_meshml_mesh2x1    $cap "$MESHML" gridsearch_lr $ds mesh:2:1
  run gs_${ds}_sklearn_n1        $cap "$V"  bench_gridsearch.py --dataset $ds --tool sklearn --n-jobs 1
  run gs_${ds}_sklearn_n2        $cap "$V"  bench_gridsearch.py --dataset $ds --tool sklearn --n-jobs 2
  run gs_${ds}_meshml_local2     $cap "$MESHML" gridsearch_lr $ds local:2
  run gs_${ds}_joblibspark       $cap "$V"  bench_gridsearch.py --dataset $ds --tool joblibspark
  run gs_${ds}_daskml            $cap "$V"  bench_gridsearch.py --dataset $ds --tool daskml
  run gs_${ds}_skdist            $cap "$VS" bench_gridsearch.py --dataset $ds --tool skdist
done
for ds in digits synth200k; do
  cap=300; [ "$ds" = synth200k ] && cap=600
  run ovr_${ds}_meshml_mesh2x1   $cap "$MESHML" ovr_lr $ds mesh:2:1
  run ovr_${ds}_sklearn_n1       $cap "$V"  bench_ovr.py --dataset $ds --tool sklearn --n-jobs 1
  run ovr_${ds}_sklearn_n2       $cap "$V"  bench_ovr.py --dataset $ds --tool sklearn --n-jobs 2
  run ovr_${ds}_meshml_local2    $cap "$MESHML" ovr_lr $ds local:2
  run ovr_${ds}_skdist           $cap "$VS" bench_ovr.py --dataset $ds --tool skdist
done
run rf_synth200k_meshml_mesh2x1  900 "$MESHML" random_forest synth200k mesh:2:1
run rf_synth200k_sklearn_n2      600 "$V"  bench_rf.py --tool sklearn --n-jobs 2
run rf_synth200k_sklearn_n1      600 "$V"  bench_rf.py --tool sklearn --n-jobs 1
run rf_synth200k_meshml_local2   900 "$MESHML" random_forest synth200k local:2
run rf_synth200k_skdist          600 "$VS" bench_rf.py --tool skdist

(cd "$BENCH" && "$V" summarize.py "$OUT")
