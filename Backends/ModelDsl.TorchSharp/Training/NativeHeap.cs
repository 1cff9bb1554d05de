using System;
using System.Globalization;
using System.IO;
using System.Runtime.InteropServices;

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
