#!/bin/sh
# Regenerates kjv.txt, the training corpus of the examples: the King James Bible, Genesis 1:1 to Ruth 4:22
# (the first eight books, whole), one verse per line, without chapter headings or verse numbers.
#
# Needs Debian's bible-kjv and bible-kjv-text packages (apt-get install -y bible-kjv bible-kjv-text).
# Usage: make-kjv.sh [output]   (default: kjv.txt beside this script)
#
# Transformation of `bible` output:
#   - `-l1000` prints each verse on one line (the default wraps at $COLUMNS, 80 here); wrapped continuation
#     lines are joined with a single space anyway, so the result does not depend on the line width;
#   - chapter headings ("Genesis 1", "1 Samuel 3") and blank lines are dropped;
#   - the leading verse number ("  12 ") is removed;
#   - runs of spaces collapse to one, leading/trailing spaces are trimmed;
#   - lines end with "\n" (LF), including the last one. The text is pure ASCII.
set -eu
out="${1:-$(dirname "$0")/kjv.txt}"
command -v bible >/dev/null 2>&1 || { echo "make-kjv.sh: 'bible' not found; apt-get install -y bible-kjv bible-kjv-text" >&2; exit 1; }
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
bible -l1000 'Gen1:1-Ruth4:22' | LC_ALL=C awk '
    function flush() { if (v != "") { gsub(/ +/, " ", v); sub(/^ /, "", v); sub(/ $/, "", v); print v } v = "" }
    /^[ \t]*$/                          { next }
    /^ +[0-9]+ /                        { flush(); sub(/^ +[0-9]+ /, ""); v = $0; next }
    /^([1-3] )?[A-Z][A-Za-z ]* [0-9]+$/ { flush(); next }
                                        { v = v " " $0 }
    END                                 { flush() }
' > "$tmp"
lines=$(wc -l < "$tmp")
[ "$lines" -eq 7213 ] || { echo "make-kjv.sh: expected 7213 verses, got $lines" >&2; exit 1; }
mv "$tmp" "$out"
trap - EXIT
echo "wrote $out: $lines verses, $(wc -c < "$out") bytes"
