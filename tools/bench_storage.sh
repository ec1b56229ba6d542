#!/usr/bin/env bash
# Storage benchmarks: CSV ingest throughput and peak memory against a plain read of the
# same file, and chunk read throughput. Default input: the 2M x 50 synthetic CSV of
# ../shared/bench (945 MB; make it with ../shared/bench/make_data.py).
#
#   bash tools/bench_storage.sh [CSV] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
CSV=${1:-${PEERS_DATA:-/tmp/peers/data}/synth2m.csv}
ROUNDS=${2:-3}
WORK=${WORK:-/tmp/meshml-bench/storage}
[ -f "$CSV" ] || { echo "missing $CSV" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
cargo build --release --quiet --bin meshml -p meshml-node
cargo build --release --quiet -p meshml-storage --example read_chunks
SIZE=$(stat -c %s "$CSV")
echo "input: $CSV ($SIZE bytes)"
for ((r = 0; r < ROUNDS; r++)); do
  # Plain read of the same bytes (page cache warm after the first round for both).
  t0=$(date +%s.%N); cat "$CSV" > /dev/null; t1=$(date +%s.%N)
  echo "round $r: plain read $(python3 -c "print(f'{$SIZE/($t1-$t0)/1048576:.1f}')") MiB/s"
  rm -rf "$WORK"; mkdir -p "$WORK"
  /usr/bin/time -f "round $r: ingest wall %e s, peak RSS %M KiB" \
    target/release/meshml dataset --data-dir "$WORK/store" put "$CSV" --name big
done
du -sb "$WORK/store"
target/release/examples/read_chunks "$WORK/store" big 3
