using System;
using System.Linq;
using ILGPU;
using ILGPU.Runtime;
using ModelDsl.Ilgpu;
using TorchSharp;
using Xunit;

// One CPU accelerator (an emulator: one OS thread per GPU thread) for the whole assembly; kernels compile once.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>The shared CPU accelerator and the transfers and comparisons kernel tests need.</summary>
    internal static class TestDevice
    {
        private static readonly Lazy<IlgpuDevice> device = new(IlgpuDevice.Cpu);

        public static IlgpuDevice Device => device.Value;

        /// <summary>The device's kernels ("Gpu.LayerNormForward(...)").</summary>
        public static Kernels Gpu => Device.Kernels;

        public static Accelerator Accelerator => Device.Accelerator;

        public static MemoryBuffer1D<float, Stride1D.Dense> Upload(float[] data) => Accelerator.Allocate1D(data);

        public static MemoryBuffer1D<int, Stride1D.Dense> Upload(int[] data) => Accelerator.Allocate1D(data);

        public static MemoryBuffer1D<float, Stride1D.Dense> Upload(torch.Tensor t) => Upload(t.to_type(torch.float32).contiguous().data<float>().ToArray());

        public static MemoryBuffer1D<float, Stride1D.Dense> Zeros(long length)
        {
            var buffer = Accelerator.Allocate1D<float>(length);
            buffer.MemSetToZero();
            return buffer;
        }

        public static float[] Download(ArrayView<float> view)
        {
            Accelerator.Synchronize();
            var result = new float[view.Length];
            view.CopyToCPU(result);
            return result;
        }

        /// <summary>float32 random normal values from libtorch's generator.</summary>
        public static torch.Tensor Randn(long seed, params long[] shape)
        {
            using var generator = new torch.Generator((ulong)seed);
            return torch.randn(shape, generator: generator);
        }

        /// <summary>|actual - expected| &lt;= atol + rtol |expected| element by element, naming the first element that is not.</summary>
        public static void AssertClose(torch.Tensor expected, float[] actual, double atol, double rtol, string what)
        {
            var e = expected.to_type(torch.float64).contiguous().data<double>().ToArray();
            Assert.True(e.Length == actual.Length, $"{what}: {actual.Length} elements, expected {e.Length}");
            double worst = 0;
            for (int i = 0; i < e.Length; i++)
            {
                double error = Math.Abs(actual[i] - e[i]);
                Assert.False(double.IsNaN(actual[i]), $"{what}[{i}] is NaN");
                Assert.True(error <= atol + rtol * Math.Abs(e[i]), $"{what}[{i}] = {actual[i]}, expected {e[i]} (error {error:g3})");
                worst = Math.Max(worst, error);
            }
        }
    }
}
