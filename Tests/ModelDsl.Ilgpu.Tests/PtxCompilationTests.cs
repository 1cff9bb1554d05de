using System.Linq;
using Xunit;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>CI has no GPU: every kernel is compiled to PTX here, as the CUDA accelerator would compile it.</summary>
    public sealed class PtxCompilationTests
    {
        [Fact]
        public void Every_kernel_compiles_to_ptx_for_sm_80()
        {
            var methods = PtxCompiler.KernelMethods().ToList();
            Assert.NotEmpty(methods);
            var kernels = PtxCompiler.Compile(methods);
            Assert.Equal(methods.Count, kernels.Count);
            foreach (var kernel in kernels)
            {
                Assert.Contains(".target sm_80", kernel.Assembly);
                Assert.Contains(".visible .entry", kernel.Assembly);
            }
        }
    }
}
