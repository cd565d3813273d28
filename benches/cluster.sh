#!/usr/bin/env bash
# Benchmarks the cluster on this machine (see BENCHMARKS.md):
#  1. wordcount over the generated corpus with a coordinator and two workers
#     (2 slots each), against `quern run` on the same data in the same run;
#  2. the time from `submit` to the first attempt's start (from the
#     coordinator's attempt records).
# Usage: benches/cluster.sh [CORPUS_SIZE]   (default 256MiB)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-256MiB}
BENCH=${BENCH_DIR:-${TMPDIR:-/tmp}/quern-bench}
cargo build --release -q -p quern
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
QUERN="$TARGET/release/quern"
mkdir -p "$BENCH"
CORPUS="$BENCH/corpus-$SIZE"
[ -d "$CORPUS" ] || "$QUERN" gen-corpus --size "$SIZE" --files 16 "$CORPUS" >/dev/null
BYTES=$(cat "$CORPUS"/*.txt | wc -c)

export QUERN_TOKEN=bench
CL="$BENCH/cluster"
rm -rf "$CL" && mkdir -p "$CL"
# Any free port: the coordinator writes the one it bound to its address file.
"$QUERN" coordinator --listen 127.0.0.1:0 --address-file "$CL/coord.address" --data-dir "$CL/coord" >"$CL/coord.log" 2>&1 &
COORD=$! W1= W2=
trap 'kill $COORD $W1 $W2 2>/dev/null || true' EXIT
until [ -s "$CL/coord.address" ]; do
  kill -0 $COORD 2>/dev/null || { cat "$CL/coord.log"; exit 1; }
  sleep 0.1
done
export QUERN_COORDINATOR="http://$(cat "$CL/coord.address")"
"$QUERN" worker --slots 1 --work-dir "$CL/w1" >"$CL/w1.log" 2>&1 &
W1=$!
"$QUERN" worker --slots 1 --work-dir "$CL/w2" >"$CL/w2.log" 2>&1 &
W2=$!
until [ "$("$QUERN" workers --json | python3 -c 'import json,sys; print(sum(w["state"]=="alive" for w in json.load(sys.stdin)))')" = 2 ]; do sleep 0.2; done

secs() { python3 -c 'import time; print(time.time())'; }
t0=$(secs)
"$QUERN" run --app wordcount --input "$CORPUS" --output "$CL/out-embedded" --reducers 2 --quiet
t1=$(secs)
"$QUERN" submit --wait --app wordcount --input "$CORPUS" --output "$CL/out-cluster" --reducers 2 >"$CL/submit.out"
ID=$(head -1 "$CL/submit.out")
t2=$(secs)
for f in "$CL"/out-embedded/part-r-*; do cmp -s "$f" "$CL/out-cluster/$(basename "$f")" || { echo "OUTPUTS DIFFER: $f"; exit 1; }; done
JOB_MS=$("$QUERN" status "$ID" --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["finished_at_ms"]-s["submitted_at_ms"])')
python3 - "$BYTES" "$t0" "$t1" "$t2" "$JOB_MS" <<'PY'
import sys
b, t0, t1, t2, job_ms = int(sys.argv[1]), *map(float, sys.argv[2:])
e, c, j = t1 - t0, t2 - t1, job_ms / 1000
print(f"quern run (embedded, 2 cores)       {e:6.2f} s  {b/1e6/e:7.1f} MB/s")
print(f"cluster, submit --wait end to end   {c:6.2f} s  {b/1e6/c:7.1f} MB/s  ratio {e/c:.2f}x (outputs identical)")
print(f"cluster, job submitted to committed {j:6.2f} s  {b/1e6/j:7.1f} MB/s  ratio {e/j:.2f}x")
PY
SUBMITTED=$("$QUERN" status "$ID" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["submitted_at_ms"])')
"$QUERN" logs "$ID" --json | python3 -c '
import json, sys
a = json.load(sys.stdin)
first = min(x["started_at_ms"] for x in a)
print(f"submit to first attempt start: {first - int(sys.argv[1])} ms")' "$SUBMITTED"
