#!/usr/bin/env python3
"""Streaming wordcount's mapper: each word of each input line, lowercased,
as `word<TAB>1`. A word is a maximal run of letters, as in quern's own
wordcount; bytes that are not UTF-8 read as U+FFFD, which is no letter."""

import re
import sys

ASCII_WORD = re.compile(rb"[A-Za-z]+")


def words(line):
    """The words of a line of any text, a character at a time."""
    word = []
    for ch in line:
        if ch.isalpha():
            word.append(ch)
        elif word:
            yield "".join(word).lower()
            word = []
    if word:
        yield "".join(word).lower()


def main():
    # Large buffers of our own, whatever PYTHONUNBUFFERED says: a write per
    # line would cost more than the counting.
    out = open(sys.stdout.fileno(), "wb", buffering=1 << 16, closefd=False)
    for raw in open(sys.stdin.fileno(), "rb", buffering=1 << 16, closefd=False):
        if raw.isascii():
            for word in ASCII_WORD.findall(raw):
                out.write(word.lower() + b"\t1\n")
        else:
            for word in words(raw.decode("utf-8", errors="replace")):
                out.write(word.encode() + b"\t1\n")
    out.flush()


main()
