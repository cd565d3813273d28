#!/usr/bin/env bash
# Runs quern side by side with reference programs on generated data, checks
# that their outputs agree, and prints how they compare (see BENCHMARKS.md):
#
#  wordcount  `quern run --app wordcount` vs limit-wc (../shared/bench), over
#             gen_corpus.py's Zipf corpus;
#  sort       `quern run --app sort` (total order) vs GNU sort with the same
#             memory, and vs limit-sort (everything in RAM: the limit), over
#             gen_sortdata.py's 100-byte lines;
#  streaming  the Python streaming wordcount of examples/streaming
#             (mapper, combiner, reducer) and the WebAssembly wordcount of
#             examples/wasm-wordcount (map, combine, reduce in the sandbox)
#             vs `quern run --app wordcount`, over the corpus, the three in
#             each pair: what a Python job and a module cost against a
#             native one;
#  pipes      a streaming `cat` mapper, map-only, vs the native identity
#             (`--app sort --reducers 0`), over the sort lines: the cost of
#             the pipes themselves;
#  cluster    (--cluster) a coordinator and 3 workers on 127.0.0.1 vs
#             `quern run`, wordcount over the Gutenberg books
#             (../shared/data/gutenberg), with the job's submit-to-finish and
#             submit-to-first-attempt times from the coordinator.
#
# Runs are paired: each pair runs quern then the reference(s), A B A B …,
# after warm-up pairs that are checked but not counted. Every run is a whole
# process under GNU time (wall time, peak RSS). A pair's ratio is the
# reference's wall time over quern's, i.e. quern's throughput relative to the
# reference (> 1: quern is faster); the table gives the median of the pairs'
# ratios, the median walls and the largest peak RSS. Any difference between
# outputs, or a failed run, stops the script with exit status 1.
#
# Needs: cargo, python3 (for arithmetic and JSON; the generators need numpy,
# which this script installs from PyPI into a virtualenv in the bench
# directory when `python3 -c 'import numpy'` fails), GNU coreutils, and GNU
# time at /usr/bin/time (Debian package `time`).
#
# Data (cached between runs, keyed by size and file count), the references'
# build, scratch space and outputs live in the bench directory.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: benches/compare.sh [OPTIONS]

  --corpus-size SIZE   wordcount corpus (gen_corpus.py --size)        [256MiB]
  --sort-size SIZE     sort input (gen_sortdata.py --size)            [1GiB]
  --files N            files of each data set                          [16]
  --pairs N            measured pairs                                  [5]
  --warmup N           pairs run (and checked) first, not counted      [1]
  --sort-buffer SIZE   quern's --sort-buffer and GNU sort's -S, in MiB
                       or GiB                                          [256MiB]
  --only LIST          cases to run, comma-separated: wordcount, sort,
                       streaming, pipes, cluster                       [wordcount,sort]
  --cluster            also run the cluster case
  --cluster-input DIR  the cluster case's input, or `corpus` for the
                       wordcount corpus               [../shared/data/gutenberg]
  --cluster-reducers N the cluster case's reducers                     [4]
  --workers N          the cluster's workers                           [3]
  --slots N            slots per worker                                [1]
  --bench-dir DIR      data, builds and outputs   [$BENCH_DIR, else $TMPDIR/quern-bench]
  --shared DIR         the shared directory (bench/, data/)            [../shared]
  --keep               keep the last outputs (they are deleted at the end)
  -h, --help           this help

SIZE is a number with KiB, MiB or GiB. Sizes are given to the generators
as they are, so `--corpus-size 8MiB --sort-size 16MiB --pairs 1` is a
quick check of the whole script.
EOF
}

die() {
  echo "compare.sh: $*" >&2
  exit 1
}

CORPUS_SIZE=256MiB
SORT_SIZE=1GiB
FILES=16
PAIRS=5
WARMUP=1
SORT_BUFFER=256MiB
CASES=wordcount,sort
CLUSTER_INPUT=
CLUSTER_REDUCERS=4
WORKERS=3
SLOTS=1
BENCH=${BENCH_DIR:-${TMPDIR:-/tmp}/quern-bench}
SHARED=
KEEP=0
while [ $# -gt 0 ]; do
  opt=$1
  case $opt in
    -h | --help) usage; exit 0 ;;
    --cluster) CASES=$CASES,cluster; shift; continue ;;
    --keep) KEEP=1; shift; continue ;;
  esac
  [ $# -ge 2 ] || die "$opt needs a value (see --help)"
  case $opt in
    --corpus-size) CORPUS_SIZE=$2 ;;
    --sort-size) SORT_SIZE=$2 ;;
    --files) FILES=$2 ;;
    --pairs) PAIRS=$2 ;;
    --warmup) WARMUP=$2 ;;
    --sort-buffer) SORT_BUFFER=$2 ;;
    --only) CASES=$2 ;;
    --cluster-input) CLUSTER_INPUT=$2 ;;
    --cluster-reducers) CLUSTER_REDUCERS=$2 ;;
    --workers) WORKERS=$2 ;;
    --slots) SLOTS=$2 ;;
    --bench-dir) BENCH=$2 ;;
    --shared) SHARED=$2 ;;
    *) die "unknown option $opt (see --help)" ;;
  esac
  shift 2
done

for n in "$FILES" "$PAIRS" "$WARMUP" "$WORKERS" "$SLOTS" "$CLUSTER_REDUCERS"; do
  [[ $n =~ ^[0-9]+$ ]] || die "not a number: $n"
done
[ "$PAIRS" -ge 1 ] || die "--pairs must be at least 1"
for s in "$CORPUS_SIZE" "$SORT_SIZE"; do
  [[ $s =~ ^[0-9]+(KiB|MiB|GiB)$ ]] || die "not a size (N with KiB, MiB or GiB): $s"
done
[[ $SORT_BUFFER =~ ^[0-9]+(MiB|GiB)$ ]] || die "--sort-buffer takes N with MiB or GiB: $SORT_BUFFER"
GNU_BUFFER=${SORT_BUFFER%iB} # 256MiB -> 256M: GNU sort's binary units
has_case() { [[ ",$CASES," == *",$1,"* ]]; }
for c in ${CASES//,/ }; do
  case $c in
    wordcount | sort | streaming | pipes | cluster) ;;
    *) die "unknown case $c (wordcount, sort, streaming, pipes, cluster)" ;;
  esac
done

# What the script needs, checked before anything is built.
if ! { [ -x /usr/bin/time ] && /usr/bin/time --version 2>&1 | grep -q GNU; }; then
  die "needs GNU time at /usr/bin/time (Debian: apt-get install time)"
fi
sort --version 2>/dev/null | grep -q GNU || die "needs GNU sort (coreutils)"
command -v python3 >/dev/null || die "needs python3"
command -v cargo >/dev/null || die "needs cargo"

# Every path absolute, then work from the repository's root.
mkdir -p "$BENCH"
BENCH=$(cd "$BENCH" && pwd)
if [ -n "$CLUSTER_INPUT" ] && [ "$CLUSTER_INPUT" != corpus ]; then CLUSTER_INPUT=$(cd "$CLUSTER_INPUT" && pwd); fi
if [ -n "$SHARED" ]; then SHARED=$(cd "$SHARED" && pwd); fi
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd ../shared 2>/dev/null && pwd)} || die "no ../shared beside the repository (give --shared DIR)"
[ -f "$SHARED/bench/gen_corpus.py" ] || die "$SHARED/bench/gen_corpus.py not found (give --shared DIR)"
CLUSTER_INPUT=${CLUSTER_INPUT:-$SHARED/data/gutenberg}

DATA=$BENCH/data
OUT=$BENCH/out
SCRATCH=$BENCH/scratch
LOGS=$BENCH/logs
RESULTS=$BENCH/results.tsv
mkdir -p "$DATA" "$OUT" "$SCRATCH" "$LOGS"
: >"$RESULTS"

CLUSTER_PIDS=()
stop_cluster() {
  [ ${#CLUSTER_PIDS[@]} -gt 0 ] || return 0
  kill "${CLUSTER_PIDS[@]}" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "${CLUSTER_PIDS[@]}" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "${CLUSTER_PIDS[@]}" 2>/dev/null || true
  wait "${CLUSTER_PIDS[@]}" 2>/dev/null || true
  CLUSTER_PIDS=()
}
cleanup() {
  stop_cluster
  if [ "$KEEP" != 1 ]; then rm -rf "$OUT" "$SCRATCH" "$BENCH/cluster"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

note() { echo "== $*" >&2; }

# ---------------------------------------------------------------- builds
note "building quern (release) and the references"
cargo build --release --quiet -p quern
if has_case streaming; then
  cargo build --release --quiet --target wasm32-wasip1 -p wasm-wordcount \
    || die "building the WebAssembly wordcount needs the target: rustup target add wasm32-wasip1"
fi
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
QUERN=$TARGET/release/quern
REFS=$BENCH/refs-target
cargo build --release --quiet --manifest-path "$SHARED/bench/limit-wc/Cargo.toml" --target-dir "$REFS" --bin limit-wc
cargo build --release --quiet --manifest-path "$SHARED/bench/limit-sort/Cargo.toml" --target-dir "$REFS"
LIMIT_WC=$REFS/release/limit-wc
LIMIT_SORT=$REFS/release/limit-sort

# ---------------------------------------------------------------- data
PY=
python_with_numpy() {
  [ -z "$PY" ] || return 0
  if python3 -c 'import numpy' 2>/dev/null; then
    PY=python3
    return
  fi
  PY=$BENCH/venv/bin/python
  if ! "$PY" -c 'import numpy' 2>/dev/null; then
    note "installing numpy into $BENCH/venv"
    python3 -c 'import ensurepip, venv' 2>/dev/null || die "needs python3's venv (Debian: apt-get install python3-venv)"
    rm -rf "$BENCH/venv"
    python3 -m venv "$BENCH/venv"
    "$BENCH/venv/bin/pip" install --quiet numpy
  fi
}

# generate SCRIPT DIR SIZE: the data set in DIR, unless a finished one is
# there (the generators write DIR.manifest last).
generate() {
  local script=$1 dir=$2 size=$3
  [ -f "$dir.manifest" ] && [ -d "$dir" ] && return
  python_with_numpy
  note "generating $dir"
  rm -rf "$dir" "$dir.manifest"
  "$PY" "$SHARED/bench/$script" --out "$dir" --size "$size" --files "$FILES" 2>&1 | sed 's/^/   /' >&2
}
bytes_of() { python3 -c 'import os,sys; d=sys.argv[1]; print(sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)))' "$1"; }

CORPUS=$DATA/corpus-$CORPUS_SIZE-$FILES
SORTDATA=$DATA/sort-$SORT_SIZE-$FILES
if [ "$CLUSTER_INPUT" = corpus ]; then CLUSTER_INPUT=$CORPUS; fi
if has_case wordcount || has_case streaming || [ "$CLUSTER_INPUT" = "$CORPUS" ]; then
  generate gen_corpus.py "$CORPUS" "$CORPUS_SIZE"
fi
if has_case sort || has_case pipes; then generate gen_sortdata.py "$SORTDATA" "$SORT_SIZE"; fi

# ---------------------------------------------------------------- runs
# measure CASE PAIR ROLE CMD...: runs CMD under GNU time (its output to
# LOGS), and records "CASE PAIR ROLE WALL_S RSS_KIB" unless PAIR is a
# warm-up (<= 0).
measure() {
  local case=$1 pair=$2 role=$3
  shift 3
  local log=$LOGS/$case-$role
  if ! /usr/bin/time -f '%e %M' -o "$log.time" "$@" >"$log.out" 2>"$log.err"; then
    echo "FAILED ($case, $role): $*" >&2
    tail -n 20 "$log.err" >&2
    exit 1
  fi
  local wall rss
  read -r wall rss <"$log.time"
  printf '   %-9s pair %2s  %-10s %7.2f s  %7.1f MiB\n' "$case" "$([ "$pair" -gt 0 ] && echo "$pair" || echo w)" \
    "$role" "$wall" "$(python3 -c "print($rss / 1024)")" >&2
  if [ "$pair" -gt 0 ]; then printf '%s\t%s\t%s\t%s\t%s\n' "$case" "$pair" "$role" "$wall" "$rss" >>"$RESULTS"; fi
}

# same FILE_A FILE_B WHAT: fails, showing the first differences, unless the
# two files are byte-identical.
same() {
  cmp -s "$1" "$2" && return
  echo "OUTPUTS DIFFER: $3" >&2
  diff "$1" "$2" | head -n 10 >&2 || true
  exit 1
}

TAB=$(printf '\t')
wordcount_pair() {
  local pair=$1
  rm -rf "$OUT/wc-quern" "$OUT/wc-limit.txt"
  measure wordcount "$pair" quern "$QUERN" run --quiet --app wordcount --input "$CORPUS" --output "$OUT/wc-quern" \
    --reducers 2 --work-dir "$SCRATCH"
  measure wordcount "$pair" limit-wc "$LIMIT_WC" --threads 2 --out "$OUT/wc-limit.txt" "$CORPUS"/*
  LC_ALL=C sort "$OUT"/wc-quern/part-r-* >"$OUT/wc-quern.sorted"
  LC_ALL=C sort "$OUT/wc-limit.txt" >"$OUT/wc-limit.sorted"
  same "$OUT/wc-quern.sorted" "$OUT/wc-limit.sorted" "wordcount: quern's part-r-* and limit-wc's output, sorted"
}

sort_pair() {
  local pair=$1
  rm -rf "$OUT/sort-quern" "$OUT/sort-gnu.txt" "$OUT/sort-limit.txt"
  measure sort "$pair" quern "$QUERN" run --quiet --app sort --input "$SORTDATA" --output "$OUT/sort-quern" \
    --sort-buffer "$SORT_BUFFER" --reducers 2 --work-dir "$SCRATCH"
  measure sort "$pair" gnu-sort env LC_ALL=C sort -S "$GNU_BUFFER" --parallel=2 -T "$SCRATCH" -t "$TAB" -k1,1 \
    -o "$OUT/sort-gnu.txt" "$SORTDATA"/*
  measure sort "$pair" limit-sort "$LIMIT_SORT" --threads 2 --out "$OUT/sort-limit.txt" "$SORTDATA"
  # Total order: the part files, concatenated in order, are the sorted input.
  if ! cat "$OUT"/sort-quern/part-r-* | cmp - "$OUT/sort-gnu.txt" >&2; then
    die "OUTPUTS DIFFER: sort: quern's part-r-* concatenated and GNU sort's output"
  fi
  cmp "$OUT/sort-limit.txt" "$OUT/sort-gnu.txt" >&2 || die "OUTPUTS DIFFER: sort: limit-sort's and GNU sort's outputs"
}

# same_parts DIR_A DIR_B WHAT: every part file of DIR_A is byte-identical
# to DIR_B's of the same name, and they have the same part files.
same_parts() {
  [ "$(cd "$1" && ls part-*)" = "$(cd "$2" && ls part-*)" ] || die "OUTPUTS DIFFER: $3: not the same part files"
  local f
  for f in "$1"/part-*; do same "$f" "$2/$(basename "$f")" "$3: $(basename "$f")"; done
}

STREAMING_EXAMPLE=$PWD/examples/streaming # the script runs from the repository root
streaming_pair() {
  local pair=$1
  rm -rf "$OUT/streaming-python" "$OUT/streaming-native"
  measure streaming "$pair" python "$QUERN" run --quiet --input "$CORPUS" --output "$OUT/streaming-python" \
    --reducers 2 --work-dir "$SCRATCH" --mapper "python3 mapper.py" --combiner "python3 reducer.py" \
    --reducer "python3 reducer.py" --file "$STREAMING_EXAMPLE/mapper.py" --file "$STREAMING_EXAMPLE/reducer.py"
  rm -rf "$OUT/streaming-wasm"
  local wc=$TARGET/wasm32-wasip1/release/wasm-wordcount.wasm
  measure streaming "$pair" wasm "$QUERN" run --quiet --input "$CORPUS" --output "$OUT/streaming-wasm" \
    --reducers 2 --work-dir "$SCRATCH" --mapper "$wc map" --combiner "$wc combine" --reducer "$wc reduce"
  measure streaming "$pair" native "$QUERN" run --quiet --app wordcount --input "$CORPUS" \
    --output "$OUT/streaming-native" --reducers 2 --work-dir "$SCRATCH"
  same_parts "$OUT/streaming-python" "$OUT/streaming-native" "streaming: the Python and the native wordcount"
  same_parts "$OUT/streaming-wasm" "$OUT/streaming-native" "streaming: the WebAssembly and the native wordcount"
}

pipes_pair() {
  local pair=$1
  rm -rf "$OUT/pipes-cat" "$OUT/pipes-native"
  measure pipes "$pair" cat "$QUERN" run --quiet --input "$SORTDATA" --output "$OUT/pipes-cat" --reducers 0 \
    --work-dir "$SCRATCH" --mapper cat
  measure pipes "$pair" native "$QUERN" run --quiet --app sort --input "$SORTDATA" --output "$OUT/pipes-native" \
    --reducers 0 --work-dir "$SCRATCH"
  same_parts "$OUT/pipes-cat" "$OUT/pipes-native" "pipes: the cat mapper's and the native identity's map-only output"
}

start_cluster() {
  local cl=$BENCH/cluster
  rm -rf "$cl" && mkdir -p "$cl"
  export QUERN_TOKEN=compare-bench
  # Any free port: the coordinator writes the one it bound to its address
  # file (by a rename, so a file that exists is complete).
  "$QUERN" coordinator --listen 127.0.0.1:0 --address-file "$cl/coord.address" --data-dir "$cl/coord" \
    >"$LOGS/coordinator.log" 2>&1 &
  CLUSTER_PIDS+=($!)
  until [ -s "$cl/coord.address" ]; do
    kill -0 "${CLUSTER_PIDS[0]}" 2>/dev/null || { cat "$LOGS/coordinator.log" >&2; die "the coordinator exited"; }
    sleep 0.1
  done
  QUERN_COORDINATOR="http://$(cat "$cl/coord.address")"
  export QUERN_COORDINATOR
  local w
  for w in $(seq "$WORKERS"); do
    # Shuffle service on any free port (the worker's default), advertised
    # to the coordinator.
    "$QUERN" worker --slots "$SLOTS" --work-dir "$cl/w$w" >"$LOGS/worker-$w.log" 2>&1 &
    CLUSTER_PIDS+=($!)
  done
  local alive tries=0
  while :; do
    alive=$("$QUERN" workers --json | python3 -c 'import json,sys; print(sum(w["state"]=="alive" for w in json.load(sys.stdin)))')
    [ "$alive" = "$WORKERS" ] && break
    tries=$((tries + 1))
    [ $tries -lt 300 ] || die "only $alive of $WORKERS workers registered in 60 s (logs in $LOGS)"
    sleep 0.2
  done
  note "cluster: coordinator at $QUERN_COORDINATOR, $WORKERS workers with $SLOTS slot(s) each"
}

cluster_pair() {
  local pair=$1
  rm -rf "$OUT/cl-embedded" "$OUT/cl-cluster"
  # When the client starts (this machine's clock, as the coordinator's):
  # planning happens before the coordinator records the job as submitted.
  local started_ms
  started_ms=$(date +%s%3N)
  measure cluster "$pair" cluster "$QUERN" submit --wait --app wordcount --input "$CLUSTER_INPUT" \
    --output "$OUT/cl-cluster" --reducers "$CLUSTER_REDUCERS"
  local id
  id=$(head -n 1 "$LOGS/cluster-cluster.out")
  measure cluster "$pair" embedded "$QUERN" run --quiet --app wordcount --input "$CLUSTER_INPUT" \
    --output "$OUT/cl-embedded" --reducers "$CLUSTER_REDUCERS" --work-dir "$SCRATCH"
  local f
  for f in "$OUT"/cl-embedded/part-r-*; do
    same "$f" "$OUT/cl-cluster/$(basename "$f")" "cluster: $(basename "$f") of the cluster's and the embedded run"
  done
  "$QUERN" status "$id" --json >"$LOGS/cluster-status.json"
  "$QUERN" logs "$id" --json >"$LOGS/cluster-attempts.json"
  # The client's start -> the job's end as the coordinator recorded it, and
  # -> the first attempt's start.
  local times
  times=$(python3 - "$LOGS/cluster-status.json" "$LOGS/cluster-attempts.json" "$started_ms" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))
attempts = json.load(open(sys.argv[2]))
started = int(sys.argv[3])
print(job["finished_at_ms"] - started, min(a["started_at_ms"] for a in attempts) - started)
PY
  )
  local finish first
  read -r finish first <<<"$times"
  echo "   cluster   job $id: submit -> finish $finish ms, submit -> first attempt $first ms" >&2
  if [ "$pair" -gt 0 ]; then printf 'cluster\t%s\tlatency\t%s\t%s\n' "$pair" "$finish" "$first" >>"$RESULTS"; fi
}

# run_case NAME: warm-up pairs, then the measured ones.
run_case() {
  local name=$1 i
  note "$name: $WARMUP warm-up pair(s), then $PAIRS pair(s)"
  for i in $(seq "$WARMUP"); do "${name}_pair" $((i - WARMUP - 1)); done
  for i in $(seq "$PAIRS"); do "${name}_pair" "$i"; done
}

if has_case wordcount; then run_case wordcount; fi
if has_case sort; then run_case sort; fi
if has_case streaming; then run_case streaming; fi
if has_case pipes; then run_case pipes; fi
if has_case cluster; then
  [ -d "$CLUSTER_INPUT" ] || die "no cluster input at $CLUSTER_INPUT (give --cluster-input DIR)"
  start_cluster
  run_case cluster
  stop_cluster
fi

# ---------------------------------------------------------------- table
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT+changes"
echo
echo "quern $COMMIT, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'); $PAIRS pair(s) after $WARMUP warm-up pair(s); every run's output checked"
if has_case wordcount; then echo "wordcount: $(basename "$CORPUS") ($(bytes_of "$CORPUS") bytes), 2 reducers"; fi
if has_case sort; then echo "sort: $(basename "$SORTDATA") ($(bytes_of "$SORTDATA") bytes), --sort-buffer $SORT_BUFFER, 2 reducers"; fi
if has_case streaming; then echo "streaming: $(basename "$CORPUS"), Python (or WebAssembly) mapper, combiner and reducer, 2 reducers"; fi
if has_case pipes; then echo "pipes: $(basename "$SORTDATA"), map-only"; fi
if has_case cluster; then echo "cluster: $(basename "$CLUSTER_INPUT") ($(bytes_of "$CLUSTER_INPUT") bytes), $CLUSTER_REDUCERS reducers, $WORKERS workers x $SLOTS slot(s)"; fi
python3 - "$RESULTS" <<'PY'
import collections, statistics, sys

runs = collections.defaultdict(dict)  # (case, role) -> pair -> (wall, rss KiB)
latency = []
for line in open(sys.argv[1]):
    case, pair, role, a, b = line.split("\t")
    if role == "latency":
        latency.append((int(a), int(b)))
    else:
        runs[(case, role)][int(pair)] = (float(a), int(b))

# (case, quern's role, reference's role, label); the cluster row compares
# the cluster with the embedded run, so "reference" is the embedded run.
rows = [
    ("wordcount", "quern", "limit-wc", "wordcount vs limit-wc"),
    ("sort", "quern", "gnu-sort", "sort vs GNU sort"),
    ("sort", "quern", "limit-sort", "sort vs limit-sort"),
    ("streaming", "python", "native", "Python vs native wc"),
    ("streaming", "wasm", "native", "WASM vs native wc"),
    ("pipes", "cat", "native", "cat mapper vs native"),
    ("cluster", "cluster", "embedded", "cluster vs quern run"),
]
head = f"{'job':<22} {'quern':>8} {'ref':>8} {'ref/quern':>10} {'(range)':>13} {'quern RSS':>10} {'ref RSS':>10}"
print(head)
print("-" * len(head))
mib = lambda kib: f"{kib / 1024:7.1f} MiB"
for case, a, b, label in rows:
    if (case, a) not in runs:
        continue
    qa, rb = runs[(case, a)], runs[(case, b)]
    pairs = sorted(set(qa) & set(rb))
    ratios = [rb[p][0] / max(qa[p][0], 0.005) for p in pairs]
    qwall = statistics.median(qa[p][0] for p in pairs)
    rwall = statistics.median(rb[p][0] for p in pairs)
    # The cluster's process is the submitting client: its RSS says nothing.
    qrss = "—" if case == "cluster" else mib(max(qa[p][1] for p in pairs))
    rrss = mib(max(rb[p][1] for p in pairs))
    spread = f"{min(ratios):.2f}–{max(ratios):.2f}"
    print(f"{label:<22} {qwall:7.2f}s {rwall:7.2f}s {statistics.median(ratios):9.2f}x {spread:>13} {qrss:>10} {rrss:>10}")
if latency:
    for i, what in enumerate(["submit -> finish", "submit -> first attempt"]):
        v = [x[i] for x in latency]
        print(f"cluster job, {what}: median {statistics.median(v):.0f} ms ({min(v)}–{max(v)} ms over {len(v)} jobs)")
print("\nquern and ref: median wall time; ref/quern: median of the pairs' ratios of wall times (quern's throughput relative")
print("to the reference; for the cluster, the cluster's relative to quern run; for streaming and pipes, the streaming")
print("job's relative to the native one); RSS: the largest peak over the pairs (a streaming job's: quern's process only).")
PY
echo "(every run: $RESULTS; logs of the last pair: $LOGS)"
