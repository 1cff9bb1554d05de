#!/bin/sh
# Regenerates the vit job's images: the first 10,000 training and the first 2,000 test images (with their labels) of
# Zalando's Fashion-MNIST, cut from Debian's dataset-fashion-mnist package and written as the originals are:
# gzip-compressed IDX files, the image count in the header changed to the subset's, the data bytes untouched.
#
# Needs Debian's dataset-fashion-mnist (apt-get install -y dataset-fashion-mnist).
# Usage: make-fashion-mnist.sh [output folder]   (default: the folder of this script)
#
# IDX: two zero bytes, the element type (0x08, unsigned bytes), the number of dimensions, one big-endian 32-bit size per
# dimension, then the data. Images are [count, 28, 28] (a 16-byte header), labels [count] (8 bytes). gzip -n leaves
# name and time out of the compressed file; Data/README.md gives the sha256 of the decompressed files, which do not
# depend on the gzip version.
set -eu
src=/usr/share/datasets/fashion-mnist
out="${1:-$(dirname "$0")}"
[ -r "$src/train-images-idx3-ubyte.gz" ] || { echo "make-fashion-mnist.sh: $src not found; apt-get install -y dataset-fashion-mnist" >&2; exit 1; }

# The 4 big-endian bytes of $1.
be32() { printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)))"; }

# subset SOURCE TARGET COUNT HEADER_BYTES RECORD_BYTES: the source's magic, COUNT, its other sizes, its first COUNT records.
subset() {
    from="$src/$1" to="$out/$2" count=$3 header=$4 record=$5
    {
        zcat "$from" | head -c 4
        be32 "$count"
        zcat "$from" | head -c "$header" | tail -c +9
        zcat "$from" | tail -c +$((header + 1)) | head -c $((count * record))
    } | gzip -9 -n > "$to.tmp"
    size=$(zcat "$to.tmp" | wc -c)
    [ "$size" -eq $((header + count * record)) ] || { rm -f "$to.tmp"; echo "make-fashion-mnist.sh: $2 has $size bytes, expected $((header + count * record))" >&2; exit 1; }
    mv "$to.tmp" "$to"
    echo "wrote $to: $count records, $(wc -c < "$to") bytes compressed, sha256 of the decompressed file $(zcat "$to" | sha256sum | cut -c1-64)"
}

subset train-images-idx3-ubyte.gz fashion-mnist-train-images-idx3-ubyte.gz 10000 16 784
subset train-labels-idx1-ubyte.gz fashion-mnist-train-labels-idx1-ubyte.gz 10000 8 1
subset t10k-images-idx3-ubyte.gz fashion-mnist-test-images-idx3-ubyte.gz 2000 16 784
subset t10k-labels-idx1-ubyte.gz fashion-mnist-test-labels-idx1-ubyte.gz 2000 8 1
