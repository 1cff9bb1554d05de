using System;
using System.Globalization;
using System.IO;
using System.Runtime.InteropServices;
using ModelDsl.Training;

namespace ModelDsl.TorchSharp.Training
{
    /// <summary>
    /// Native-memory hygiene for long libtorch CPU training runs on Linux/glibc, and a resident-set reading.
    /// <para>
    /// libtorch's CPU allocator is plain malloc. A training step frees and reallocates the same tensors every
    /// step, glibc keeps the freed chunks in its arenas (and raises its mmap threshold dynamically, so large
    /// tensors stop being mmapped and land in fragmented heaps), and the process's RSS creeps up even though the
    /// number of live tensors is constant. <see cref="Trim"/> (glibc <c>malloc_trim(0)</c>) hands the free pages
    /// of every arena back to the kernel; calling it every few dozen steps keeps RSS flat at a negligible cost.
    /// Elsewhere (musl, macOS, Windows) the calls are no-ops.
    /// </para>
    /// <para>
    /// Measured on the project's machine (Debian 12, glibc 2.36, libtorch 2.10 CPU, 2 cores shared with other
    /// jobs): a 4-head, 2-layer, d=128 GPT with tied embeddings, B=8, T=128, one thread, 300 AdamW steps on the
    /// KJV corpus, one process per variant, RSS in MiB after steps 1/50/100/150/200/250/300:
    /// <list type="bullet">
    /// <item>nothing: 189 278 309 365 415 447 471 (+282 MiB, still climbing), 1,690 tokens/s;</item>
    /// <item><c>malloc_trim(0)</c> every 50 steps: 198 192 196 200 204 208 211 (+13 MiB), 1,734 tokens/s;</item>
    /// <item><c>mallopt(M_MMAP_THRESHOLD, 128 KiB)</c> at start: 184 199 203 211 219 231 241 (+57 MiB), 1,476 tokens/s
    /// (every large tensor becomes a fresh mmap, so each step pays page faults).</item>
    /// </list>
    /// All three reached the same loss (the runs are deterministic). Trimming keeps memory flat at no measurable
    /// speed cost, so the trainer trims (<see cref="TrainingOptions.TrimNativeMemoryEvery"/>) and sets no mallopt.
    /// </para>
    /// </summary>
    public static class NativeHeap
    {
        private static bool unavailable = !OperatingSystem.IsLinux();

        /// <summary>
        /// Returns free heap memory to the kernel (glibc <c>malloc_trim(0)</c>). True when glibc released anything,
        /// false when nothing was released or the call is unavailable.
        /// </summary>
        public static bool Trim()
        {
            if (unavailable) return false;
            try { return malloc_trim(UIntPtr.Zero) != 0; }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                unavailable = true; // musl and other non-glibc libcs have no malloc_trim
                return false;
            }
        }

        /// <summary>The process's resident set in bytes (VmRSS of /proc/self/status), or -1 where unknown.</summary>
        public static long ResidentBytes()
        {
            if (!OperatingSystem.IsLinux()) return -1;
            try
            {
                foreach (string line in File.ReadLines("/proc/self/status"))
                {
                    if (!line.StartsWith("VmRSS:", StringComparison.Ordinal)) continue;
                    var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
                    return long.Parse(parts[1], CultureInfo.InvariantCulture) * 1024; // reported in kB
                }
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            return -1;
        }

        [DllImport("libc", EntryPoint = "malloc_trim")]
        private static extern int malloc_trim(UIntPtr pad);
    }
}
