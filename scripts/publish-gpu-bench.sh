#!/usr/bin/env bash
# Publishes the ILGPU benchmark as one self-contained folder for a GPU machine that has an NVIDIA driver but no .NET
# SDK and no libtorch: kernel timings and training steps against the roofline (docs/roofline.md).
#   scripts/publish-gpu-bench.sh [OUT]        (default: artifacts/gpu-bench)
# Then copy OUT to the GPU machine and run OUT/run.sh there; it writes OUT/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-artifacts/gpu-bench}"
rm -rf "$out"
# Self-contained and trimmed (the project sets both when a runtime is given), with ILGPU and CoreLib rooted: ILGPU
# compiles kernels from IL it reads by reflection (environment.md).
dotnet publish Examples/ModelDsl.Ilgpu.Bench -c Release -r linux-x64 -o "$out" --nologo
cat > "$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# Runs on the GPU machine: device, kernel timings and training steps, each beside its roofline bound.
set -euo pipefail
cd "$(dirname "$0")"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
./modeldsl-ilgpu-bench --steps "${STEPS:-20}" | tee results.md
RUN
chmod +x "$out/run.sh" "$out/modeldsl-ilgpu-bench"
du -sh "$out"
