using System;
using ModelDsl.Ilgpu;

namespace ModelDsl.Examples.Backends
{
    /// <summary>
    /// The jobs' --backend option: torchsharp (libtorch on the CPU, the default) or ilgpu (CUDA when there is an NVIDIA
    /// GPU, else ILGPU's CPU accelerator, an emulator that checks the kernels rather than trains). The same declaration
    /// and the same training options run on either; checkpoints have Hugging Face names on both.
    /// </summary>
    internal static class BackendOption
    {
        public const string Usage = """
                --backend NAME           torchsharp (default: libtorch on the CPU) or ilgpu (CUDA when there is an
                                         NVIDIA GPU, else ILGPU's CPU accelerator, an emulator for checking: slow)
            """;

        /// <summary>
        /// The ILGPU device for --backend ilgpu (null for torchsharp), after saying which backend runs; on the emulator
        /// the job's <paramref name="emulatorRun"/> (what it shrinks to without --steps) is said too.
        /// </summary>
        public static IlgpuDevice? Open(Options options, string emulatorRun)
        {
            string backend = options.Get("--backend", "torchsharp");
            if (backend is not ("torchsharp" or "ilgpu"))
                throw new ArgumentException($"--backend is torchsharp or ilgpu, not '{backend}'.");
            if (backend == "torchsharp")
            {
                Console.WriteLine("Backend: TorchSharp (libtorch, CPU).");
                return null;
            }
            var device = IlgpuDevice.Best();
            Console.WriteLine(device.IsEmulator
                ? $"Backend: ILGPU on {device.Description}. It runs every GPU thread as an OS thread, so it checks the kernels rather than trains: without --steps this run is {emulatorRun}."
                : $"Backend: ILGPU on {device.Description}.");
            return device;
        }
    }
}
