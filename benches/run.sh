#!/usr/bin/env bash
# Benchmarks quern on generated data (see BENCHMARKS.md for results):
#  1. wordcount over a Zipf corpus vs. a hand-written two-thread baseline
#     (throughput in MB/s and peak RSS);
#  2. `quern run` wordcount on the Gutenberg books, end to end;
#  3. an identity (sort) job over generated lines with a 32 MiB sort buffer,
#     for peak RSS.
# Usage: benches/run.sh [CORPUS_SIZE] [SORT_SIZE]   (defaults: 256MiB 1GiB)
# Needs GNU time (/usr/bin/time; Debian package `time`).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-256MiB}
SORT_SIZE=${2:-1GiB}
BENCH=${BENCH_DIR:-${TMPDIR:-/tmp}/quern-bench}
cargo build --release -q -p quern -p baseline-wordcount
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
QUERN="$TARGET/release/quern"
BASELINE="$TARGET/release/baseline-wordcount"
mkdir -p "$BENCH"

# Runs a command under GNU time; prints "SECONDS PEAK_RSS_KIB".
measure() {
  /usr/bin/time -f '%e %M' -o "$BENCH/time.txt" "$@" >/dev/null 2>"$BENCH/stderr.txt" || {
    cat "$BENCH/stderr.txt" >&2; return 1; }
  cat "$BENCH/time.txt"
}

report() { # NAME BYTES SECONDS RSS_KIB
  python3 -c "import sys; n,b,s,r=sys.argv[1:]; b=int(b); s=float(s); r=int(r)
print(f'{n:<28} {s:7.2f} s  {b/1e6/max(s,1e-9):8.1f} MB/s  peak RSS {r/1024:7.1f} MiB')" "$@"
}

CORPUS="$BENCH/corpus-$SIZE"
[ -d "$CORPUS" ] || "$QUERN" gen-corpus --size "$SIZE" --files 16 "$CORPUS" >/dev/null
BYTES=$(cat "$CORPUS"/*.txt | wc -c)
echo "wordcount over $SIZE ($BYTES bytes, 16 files), $(nproc) cores"
rm -rf "$BENCH/out-quern" "$BENCH/out-baseline.txt"
read -r qs qr < <(measure "$QUERN" run --app wordcount --input "$CORPUS" --output "$BENCH/out-quern" --reducers 2 --quiet)
read -r bs br < <(measure "$BASELINE" "$BENCH/out-baseline.txt" "$CORPUS"/*.txt)
report "quern wordcount" "$BYTES" "$qs" "$qr"
report "baseline (2 threads)" "$BYTES" "$bs" "$br"
python3 -c "import sys; print(f'ratio quern/baseline throughput: {float(sys.argv[2])/float(sys.argv[1]):.2f}x')" "$qs" "$bs"
sort -m "$BENCH"/out-quern/part-r-* | cmp -s - <(LC_ALL=C sort "$BENCH/out-baseline.txt") \
  && echo "outputs agree" || echo "OUTPUTS DIFFER"

BOOKS=../shared/data/gutenberg
if [ -d "$BOOKS" ]; then
  GBYTES=$(cat "$BOOKS"/* | wc -c)
  rm -rf "$BENCH/out-gutenberg"
  read -r gs gr < <(measure "$QUERN" run --app wordcount --input "$BOOKS" --output "$BENCH/out-gutenberg" --quiet)
  report "quern on Gutenberg" "$GBYTES" "$gs" "$gr"
fi

LINES="$BENCH/lines-$SORT_SIZE"
[ -d "$LINES" ] || "$QUERN" gen-corpus --size "$SORT_SIZE" --files 8 --seed 7 "$LINES" >/dev/null
LBYTES=$(cat "$LINES"/*.txt | wc -c)
rm -rf "$BENCH/out-sort"
read -r ss sr < <(measure "$QUERN" run --app sort --input "$LINES" --output "$BENCH/out-sort" --reducers 2 \
  --sort-buffer 32MiB --work-dir "$BENCH/work" --quiet)
report "identity (sort), 32MiB buf" "$LBYTES" "$ss" "$sr"
rm -rf "$BENCH/out-sort" "$BENCH/out-quern" "$BENCH/out-gutenberg"
