#!/usr/bin/env bash
# Assembles every ILGPU kernel for an H100 (sm_90) with NVIDIA's ptxas and prints, per kernel: group size, registers per
# thread, spill stores/loads, shared memory and the theoretical occupancy with the limit that binds. No GPU needed.
#
#   scripts/ptxas-report.sh [OUT_DIR]      (default: out/ptxas; writes OUT_DIR/ptx/*.ptx and OUT_DIR/report.md)
#
# ptxas comes from Debian's nvidia-cuda-toolkit 11.8 (non-free), downloaded once and unpacked into
# ~/.cache/modeldsl/cuda-11.8 without installing it (installing would pull in 2.3 GB of dependencies); set PTXAS to use
# another one. ILGPU writes `.target sm_80` PTX, which ptxas assembles for -arch=sm_90. ILGPU 1.5.3 labels it PTX ISA
# `.version 8.0`, newer than ptxas 11.8 reads (7.8): the script assembles a copy labelled 7.8. That is sound: an
# instruction that needs ISA 8.0 would still be rejected, and none of ILGPU's sm_80 code generation uses one.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo/out/ptxas}"
cache="${MODELDSL_CACHE:-$HOME/.cache/modeldsl}/cuda-11.8"

fetch_ptxas() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! grep -rEqs '[[:space:]]non-free([[:space:]]|$)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # The same mirror and keyring as the system's own Debian entry, with the components that carry the CUDA toolkit.
    local mirror keyring
    mirror="$(grep -rhs '^URIs:.*debian/\?$' /etc/apt/sources.list.d/*.sources | head -1 | awk '{print $2}')"
    keyring="$(grep -rhs '^Signed-By:' /etc/apt/sources.list.d/*.sources | head -1 | awk '{print $2}')"
    mirror="${mirror:-http://deb.debian.org/debian}"
    keyring="${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}"
    echo "Adding a bookworm contrib non-free source ($mirror) for nvidia-cuda-toolkit's ptxas." >&2
    printf 'Types: deb\nURIs: %s\nSuites: bookworm\nComponents: contrib non-free\nSigned-By: %s\n' "$mirror" "$keyring" \
      | $sudo tee /etc/apt/sources.list.d/modeldsl-nonfree.sources >/dev/null
  fi
  $sudo apt-get update -qq
  local download
  download="$(mktemp -d)"
  (cd "$download" && apt-get download -qq nvidia-cuda-toolkit)
  mkdir -p "$cache"
  dpkg -x "$download"/nvidia-cuda-toolkit_*.deb "$cache"
  rm -rf "$download"
}

ptxas="${PTXAS:-$cache/usr/bin/ptxas}"
if [ ! -x "$ptxas" ]; then
  fetch_ptxas
fi
echo "ptxas: $("$ptxas" --version | tail -1)" >&2

mkdir -p "$out"
dotnet run --project "$repo/Examples/ModelDsl.Examples" -c Release -- ptx --out "$out" >&2

# H100 (sm_90) per multiprocessor: 65536 registers allocated per warp in units of 256, 2048 threads, 228 KB shared
# memory of which each group also reserves 1 KB, at most 32 groups. Auto-grouped kernels get their group size from
# ILGPU at launch (the CUDA occupancy API), so for them only the register limit is computed.
report="$out/report.md"
{
  echo "| kernel | group | registers | spill stores / loads (B) | shared (B) | groups/SM | occupancy | bound by |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|"
  tail -n +2 "$out/ptx/kernels.tsv" | while IFS=$'\t' read -r kernel group dynamic; do
    sed 's/^\.version 8\.0$/.version 7.8/' "$out/ptx/$kernel.ptx" > "$out/assembled.ptx"
    if ! info="$("$ptxas" -arch=sm_90 -v "$out/assembled.ptx" -o /dev/null 2>&1)"; then
      echo "ptxas rejected $kernel: $info" >&2
      exit 1
    fi
    # ILGPU inlines helper methods, so the one entry's figures are the kernel's.
    registers="$(grep -o 'Used [0-9]* registers' <<<"$info" | head -1 | awk '{print $2}' || true)"
    spills="$(grep -o '[0-9]* bytes spill stores, [0-9]* bytes spill loads' <<<"$info" | head -1 | awk '{print $1 " / " $5}' || true)"
    static="$(grep -o '[0-9]* bytes smem' <<<"$info" | head -1 | awk '{print $1}' || true)"
    extern_shared="no"
    if grep -q '\.extern \.shared' "$out/ptx/$kernel.ptx"; then extern_shared="yes"; fi
    awk -v kernel="$kernel" -v group="$group" -v regs="${registers:-0}" -v spills="${spills:-0 / 0}" \
        -v static="${static:-0}" -v dynamic="$dynamic" -v extern_shared="$extern_shared" 'BEGIN {
      per_warp = int((regs * 32 + 255) / 256) * 256
      warps_by_registers = int(65536 / per_warp)
      shared = static + dynamic
      shared_text = shared
      if (dynamic > 0) shared_text = static " + " dynamic " dyn."
      else if (extern_shared == "yes") shared_text = static " + dyn. (not declared)"
      if (group == 0) {
        printf "| %s | auto | %d | %s | %s | - | %.0f%% | group size chosen at launch: register limit only |\n", kernel, regs, spills, shared_text, 100 * (warps_by_registers < 64 ? warps_by_registers : 64) / 64
        exit
      }
      warps = group / 32
      by_threads = int(2048 / group)
      by_registers = int(warps_by_registers / warps)
      by_shared = int(233472 / (shared + 1024))
      limit = 32
      if (by_threads < limit) limit = by_threads
      if (by_registers < limit) limit = by_registers
      if (by_shared < limit) limit = by_shared
      bound = ""  # every limit that reaches the minimum
      if (by_threads == limit) bound = bound " = threads"
      if (by_registers == limit) bound = bound " = registers"
      if (by_shared == limit) bound = bound " = shared memory"
      if (limit == 32) bound = bound " = 32 groups/SM"
      printf "| %s | %d | %d | %s | %s | %d | %.0f%% | %s |\n", kernel, group, regs, spills, shared_text, limit, 100 * limit * warps / 64, substr(bound, 4)
    }'
  done
} | tee "$report"
rm -f "$out/assembled.ptx"
echo "Wrote $report" >&2
