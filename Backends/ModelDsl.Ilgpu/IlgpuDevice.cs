using System;
using System.Linq;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace ModelDsl.Ilgpu
{
    /// <summary>
    /// An ILGPU context and accelerator with the kernels loaded for it: CUDA on an NVIDIA GPU, or ILGPU's CPU
    /// accelerator, which runs the same kernels one OS thread per GPU thread. The CPU accelerator is an emulator for
    /// checking kernels, not a fast CPU backend: a step that takes milliseconds on a GPU takes seconds there.
    /// </summary>
    public sealed class IlgpuDevice : IDisposable
    {
        /// <summary>
        /// The emulated GPU of <see cref="Cpu"/>: NVIDIA's warp of 32 threads and up to 256 threads per group, so
        /// kernels see the warp and group sizes they get on CUDA; one multiprocessor (groups run one after another).
        /// </summary>
        public static CPUDevice EmulatedGpu { get; } = new(numThreadsPerWarp: 32, numWarpsPerMultiprocessor: 8, numMultiprocessors: 1);

        private Kernels? kernels;

        private IlgpuDevice(Context context, Accelerator accelerator)
        {
            Context = context;
            Accelerator = accelerator;
        }

        public Context Context { get; }

        public Accelerator Accelerator { get; }

        /// <summary>True on the CPU accelerator: correct results, emulator speed.</summary>
        public bool IsEmulator => Accelerator.AcceleratorType == AcceleratorType.CPU;

        /// <summary>"CUDA: NVIDIA H100 80GB HBM3" or "ILGPU CPU accelerator (emulator, for checking; slow)".</summary>
        public string Description => IsEmulator
            ? "ILGPU CPU accelerator (an emulator for checking kernels: slow)"
            : $"CUDA: {Accelerator.Name}";

        /// <summary>The kernels of this device, compiled on first use (ILGPU compiles each kernel once per accelerator).</summary>
        public Kernels Kernels => kernels ??= new Kernels(Accelerator);

        /// <summary>ILGPU's CPU accelerator, emulating <see cref="EmulatedGpu"/>.</summary>
        public static IlgpuDevice Cpu()
        {
            var context = CreateContext(cuda: false);
            return new IlgpuDevice(context, context.CreateCPUAccelerator(0));
        }

        /// <summary>The first CUDA device; throws with the reason when there is none.</summary>
        public static IlgpuDevice Cuda()
            => TryCuda() ?? throw new InvalidOperationException(
                "No CUDA device: ILGPU found no NVIDIA GPU (or no libcuda.so.1 driver library). Use IlgpuDevice.Cpu() to check kernels on the CPU accelerator.");

        /// <summary>CUDA when an NVIDIA GPU is present, otherwise the CPU accelerator.</summary>
        public static IlgpuDevice Best() => TryCuda() ?? Cpu();

        private static IlgpuDevice? TryCuda()
        {
            EnableDriverLibraryFallback();
            Context context;
            try
            {
                context = CreateContext(cuda: true);
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or NotSupportedException or TypeInitializationException)
            {
                return null;
            }
            var device = context.Devices.FirstOrDefault(d => d.AcceleratorType == AcceleratorType.Cuda);
            if (device is null)
            {
                context.Dispose();
                return null;
            }
            return new IlgpuDevice(context, device.CreateAccelerator(context));
        }

        internal static Context CreateContext(bool cuda) => Context.Create(builder =>
        {
            builder.CPU(EmulatedGpu).EnableAlgorithms().Optimize(OptimizationLevel.O1);
            if (cuda) builder.Cuda();
        });

        private static bool fallbackInstalled;

        /// <summary>
        /// ILGPU imports the driver as "cuda", which .NET looks for as libcuda.so: only CUDA's development package
        /// installs that name; the driver itself installs libcuda.so.1.
        /// </summary>
        private static void EnableDriverLibraryFallback()
        {
            if (fallbackInstalled || !OperatingSystem.IsLinux()) return;
            fallbackInstalled = true;
            AssemblyLoadContext.Default.ResolvingUnmanagedDll += (_, name) =>
                name == "cuda" && NativeLibrary.TryLoad("libcuda.so.1", out var handle) ? handle : IntPtr.Zero;
        }

        public void Dispose()
        {
            Accelerator.Dispose();
            Context.Dispose();
        }
    }
}
