#!/usr/bin/env python3
"""Streaming wordcount's reducer and combiner: `word<TAB>count` lines,
sorted by word, summed per word."""

import sys


def main():
    # Large buffers of our own, whatever PYTHONUNBUFFERED says.
    out = open(sys.stdout.fileno(), "wb", buffering=1 << 16, closefd=False)
    current, total = None, 0
    for raw in open(sys.stdin.fileno(), "rb", buffering=1 << 16, closefd=False):
        key, _, value = raw.rstrip(b"\n").partition(b"\t")
        if key != current:
            if current is not None:
                out.write(b"%s\t%d\n" % (current, total))
            current, total = key, 0
        total += int(value)
    if current is not None:
        out.write(b"%s\t%d\n" % (current, total))
    out.flush()


main()
