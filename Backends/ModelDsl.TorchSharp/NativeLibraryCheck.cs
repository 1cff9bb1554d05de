using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using ModelDsl.TorchSharp.Native;
using TorchSharp;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// Loads TorchSharp's native backend up front and turns its opaque failures into an explanation. The common one
    /// on Debian 12 / Ubuntu 22.04: libLibTorchSharp.so requires GLIBCXX_3.4.32, which their libstdc++ lacks, and the
    /// build step that fixes the application's copy (build/ModelDsl.TorchSharp.targets) did not run.
    /// </summary>
    public static class TorchSharpRuntime
    {
        private static readonly object Gate = new object();
        private static volatile bool loaded;

        /// <summary>
        /// Initialises TorchSharp's CPU backend. Cheap after the first successful call.
        /// </summary>
        /// <exception cref="InvalidOperationException">
        /// The native backend cannot be loaded; the message says why and how to fix it (the original exception is the
        /// inner exception).
        /// </exception>
        public static void EnsureLoaded()
        {
            if (loaded) return;
            lock (Gate)
            {
                if (loaded) return;
                try
                {
                    torch.InitializeDeviceType(DeviceType.CPU);
                }
                catch (Exception e) when (IsNativeLoadFailure(e))
                {
                    throw Explain(e);
                }
                loaded = true;
            }
        }

        private static bool IsNativeLoadFailure(Exception e)
        {
            for (Exception? x = e; x != null; x = x.InnerException)
                if (x is TypeInitializationException or NotSupportedException or DllNotFoundException
                    or BadImageFormatException or EntryPointNotFoundException)
                    return true;
            return false;
        }

        private static InvalidOperationException Explain(Exception failure)
        {
            string root = Innermost(failure).Message.Split('\n')[0].Trim();
            if (OperatingSystem.IsLinux())
            {
                foreach (var library in CandidateLibraries())
                {
                    ElfVersionRequirement requirement;
                    try { requirement = ElfVersionPatcher.Inspect(library, ElfVersionPatcher.Glibcxx3432); }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
                    if (requirement != ElfVersionRequirement.Strong) continue;

                    string? system = ElfVersionPatcher.FindSystemLibStdCxx();
                    bool systemHasIt;
                    try { systemHasIt = system != null && ElfVersionPatcher.DefinesVersion(system, ElfVersionPatcher.Glibcxx3432); }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException) { systemHasIt = false; }
                    if (systemHasIt) continue;

                    return new InvalidOperationException(
                        $"TorchSharp could not load its native library '{library}': it requires the C++ runtime symbol version " +
                        $"{ElfVersionPatcher.Glibcxx3432} (libstdc++ of GCC 13 or newer), which this system's " +
                        $"{(system != null ? $"'{system}'" : "libstdc++.so.6")} does not provide (Debian 12 and Ubuntu 22.04 ship GCC 12's). " +
                        "The only symbol bound to that version is never called, and ModelDsl.TorchSharp's build step " +
                        "(build/ModelDsl.TorchSharp.targets) marks the requirement weak in the application's own copy of the library " +
                        "so that it loads, but this copy has not been patched. To fix it: rebuild or republish the application on Linux " +
                        "with 'dotnet build' / 'dotnet publish' so that the build step runs (and do not set ModelDslPatchLibTorchSharp=false), " +
                        "or install a libstdc++ from GCC 13 or newer. " +
                        $"Loader message: {LoaderMessage(library) ?? root}",
                        failure);
                }
            }
            return new InvalidOperationException(
                $"TorchSharp's native backend (libtorch, LibTorchSharp) could not be loaded: {root}. " +
                "Check that the application references TorchSharp-cpu (or a CUDA variant) and that its output folder holds the " +
                "native libraries under runtimes/<rid>/native.",
                failure);
        }

        private static Exception Innermost(Exception e)
        {
            while (e.InnerException != null) e = e.InnerException;
            return e;
        }

        /// <summary>The dynamic loader's own words (dlerror) for <paramref name="library"/>, if it refuses it.</summary>
        private static string? LoaderMessage(string library)
        {
            try
            {
                var handle = NativeLibrary.Load(library);
                NativeLibrary.Free(handle);
                return null;
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                return e.Message.Trim();
            }
        }

        private static IEnumerable<string> CandidateLibraries()
        {
            var folders = new List<string>();
            string? torchSharpFolder = Path.GetDirectoryName(typeof(torch).Assembly.Location);
            if (!string.IsNullOrEmpty(torchSharpFolder)) folders.Add(torchSharpFolder);
            if (!folders.Contains(AppContext.BaseDirectory.TrimEnd('/'))) folders.Add(AppContext.BaseDirectory);
            foreach (var folder in folders)
            {
                foreach (var rid in new[] { RuntimeInformation.RuntimeIdentifier, "linux-x64", "linux-arm64" })
                {
                    string path = Path.Combine(folder, "runtimes", rid, "native", "libLibTorchSharp.so");
                    if (File.Exists(path)) yield return path;
                }
                string flat = Path.Combine(folder, "libLibTorchSharp.so");
                if (File.Exists(flat)) yield return flat;
            }
        }
    }
}
