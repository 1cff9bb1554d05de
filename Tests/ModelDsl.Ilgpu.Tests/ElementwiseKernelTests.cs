using ModelDsl.Ilgpu;
using TorchSharp;
using Xunit;
using static ModelDsl.Ilgpu.Tests.TestDevice;

namespace ModelDsl.Ilgpu.Tests
{
    public sealed class ElementwiseKernelTests
    {
        [Fact]
        public void Add_and_accumulate_match_libtorch()
        {
            var a = Randn(1, 37);
            var b = Randn(2, 37);
            using var da = Upload(a);
            using var db = Upload(b);
            using var output = Zeros(37);
            Gpu.Add(output.View, da.View, db.View);
            AssertClose(a + b, Download(output.View), 0, 0, "a + b");
            Gpu.Accumulate(output.View, da.View);
            AssertClose(a + b + a, Download(output.View), 1e-6, 1e-6, "a + b + a");
        }

        [Fact]
        public void Launchers_refuse_views_of_other_lengths()
        {
            using var a = Zeros(4);
            using var b = Zeros(5);
            var e = Assert.Throws<System.ArgumentException>(() => Gpu.Add(a.View, a.View, b.View));
            Assert.Contains("Add: b has 5 elements, the output 4", e.Message);
        }
    }
}
