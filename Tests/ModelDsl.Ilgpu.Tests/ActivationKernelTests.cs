using System;
using System.Globalization;
using System.Linq;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static ModelDsl.Ilgpu.Tests.KernelChecks;
using static ModelDsl.Ilgpu.Tests.TestDevice;
using static TorchSharp.torch;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>
    /// Activations and gated units against libtorch's own functions in float64 (gelu exact and tanh, relu, silu, tanh),
    /// gradients against autograd and central finite differences. Element by element: |error| &lt;= 2e-6 (1 + |ref|), a few
    /// float32 roundings of each value and of erf's 1.2e-7 relative fit error.
    /// </summary>
    public sealed class ActivationKernelTests(ITestOutputHelper output)
    {
        private const double Tolerance = 2e-6;

        public static TheoryData<KernelActivation> Functions => new(Enum.GetValues<KernelActivation>());

        private static Tensor Reference(KernelActivation f, Tensor x) => f switch
        {
            KernelActivation.Gelu => nn.functional.gelu(x),
            KernelActivation.GeluTanh => nn.functional.gelu(x, global::TorchSharp.Modules.GELU.Approximate.tanh),
            KernelActivation.Relu => nn.functional.relu(x),
            KernelActivation.Silu => nn.functional.silu(x),
            _ => x.tanh(),
        };

        /// <summary>Random values and the edges: 0, tiny, where exp(2x) overflows (|x| > 44), far tails.</summary>
        private static Tensor Inputs(long seed, int count)
        {
            var edges = new float[] { 0f, 1e-4f, -1e-4f, 5f, -5f, 12f, -12f, 30f, -30f, 50f, -50f, 100f, -100f };
            return cat(new[] { Randn(seed, count) * 3, tensor(edges) });
        }

        [Theory, MemberData(nameof(Functions))]
        public void Forward_and_backward_match_libtorch_and_autograd(KernelActivation f)
        {
            var x = Inputs(1, 300); // 313 elements: not a multiple of any group size
            var dy = Randn(2, x.shape[0]);
            using var input = Upload(x);
            using var y = Zeros(x.shape[0]);
            using var dOutput = Upload(dy);
            using var dInput = Filled(x.shape[0], 0.25f);
            Gpu.ActivationForward(f, y.View, input.View);
            Gpu.ActivationBackward(f, dInput.View, dOutput.View, input.View);

            var xr = Leaf(x);
            var reference = Reference(f, xr);
            reference.backward(new[] { F64(dy) });
            AssertElementwise(reference, Download(y.View), $"{f} forward");
            AssertElementwise(GradOf(xr) + 0.25, Download(dInput.View), $"{f} backward + 0.25");
        }

        [Fact]
        public void Tanh_backward_from_its_output_matches_autograd()
        {
            // The form the generated code uses (the IR saves tanh's output, as libtorch does), on the same edges.
            var x = Inputs(8, 300);
            var dy = Randn(9, x.shape[0]);
            var xr = Leaf(x);
            var reference = xr.tanh();
            reference.backward(new[] { F64(dy) });
            using var y = Upload(reference.detach());
            using var dOutput = Upload(dy);
            using var dInput = Filled(x.shape[0], 0.25f);
            Gpu.TanhBackward(dInput.View, dOutput.View, y.View);
            AssertElementwise(GradOf(xr) + 0.25, Download(dInput.View), "tanh backward from the output + 0.25");
        }

        [Theory, MemberData(nameof(Functions))]
        public void Backward_matches_finite_differences(KernelActivation f)
        {
            var x = Randn(3, 9) * 2;
            var dy = Randn(4, 9);
            using var input = Upload(x);
            using var dOutput = Upload(dy);
            using var dInput = Zeros(9);
            Gpu.ActivationBackward(f, dInput.View, dOutput.View, input.View);
            AssertNear(FiniteDifferences(v => Dot(Reference(f, v), F64(dy)), x), Download(dInput.View), Tolerance, $"{f} backward vs finite differences", output);
        }

        [Theory, MemberData(nameof(Functions))]
        public void Gated_units_match_libtorch_autograd_and_finite_differences(KernelActivation f)
        {
            var gate = Inputs(5, 60);
            var upValues = Randn(6, gate.shape[0]);
            var dy = Randn(7, gate.shape[0]);
            long n = gate.shape[0];
            using var g = Upload(gate);
            using var u = Upload(upValues);
            using var y = Zeros(n);
            using var dOutput = Upload(dy);
            using var dGate = Filled(n, -1f);
            using var dUp = Filled(n, 2f);
            Gpu.GatedForward(f, y.View, g.View, u.View);
            Gpu.GatedBackward(f, dGate.View, dUp.View, dOutput.View, g.View, u.View);

            var gr = Leaf(gate);
            var ur = Leaf(upValues);
            var reference = Reference(f, gr) * ur;
            reference.backward(new[] { F64(dy) });
            AssertElementwise(reference, Download(y.View), $"{f}(gate) * up");
            AssertElementwise(GradOf(gr) - 1, Download(dGate.View), $"{f} dGate - 1");
            AssertElementwise(GradOf(ur) + 2, Download(dUp.View), $"{f} dUp + 2");

            var smallGate = gate.narrow(0, 0, 6);
            var smallUp = upValues.narrow(0, 0, 6);
            var smallDy = dy.narrow(0, 0, 6);
            using var sg = Upload(smallGate);
            using var su = Upload(smallUp);
            using var sdy = Upload(smallDy);
            using var sdGate = Zeros(6);
            using var sdUp = Zeros(6);
            Gpu.GatedBackward(f, sdGate.View, sdUp.View, sdy.View, sg.View, su.View);
            AssertNear(FiniteDifferences(v => Dot(Reference(f, v) * F64(smallUp), F64(smallDy)), smallGate), Download(sdGate.View), Tolerance, $"{f} dGate vs finite differences", output);
            AssertNear(FiniteDifferences(v => Dot(Reference(f, F64(smallGate)) * v, F64(smallDy)), smallUp), Download(sdUp.View), Tolerance, $"{f} dUp vs finite differences", output);
        }

        [Fact]
        public void Exact_gelu_is_accurate_over_the_whole_range()
        {
            // erf is a fitted approximation here: measure GELU and its derivative on a dense grid over [-10, 10].
            var x = linspace(-10, 10, 4001, dtype: float32);
            using var input = Upload(x);
            using var y = Zeros(4001);
            using var ones = Filled(4001, 1f);
            using var dInput = Zeros(4001);
            Gpu.ActivationForward(KernelActivation.Gelu, y.View, input.View);
            Gpu.ActivationBackward(KernelActivation.Gelu, dInput.View, ones.View, input.View);
            var xr = Leaf(x);
            var reference = nn.functional.gelu(xr);
            reference.backward(new[] { ones_like(reference) });
            AssertElementwise(reference, Download(y.View), "gelu on [-10, 10]");
            AssertElementwise(GradOf(xr), Download(dInput.View), "gelu' on [-10, 10]");
        }

        [Fact]
        public void Every_declared_activation_has_a_kernel_function()
        {
            foreach (var activation in Enum.GetValues<Activation>()) _ = KernelActivations.Of(activation);
            Assert.Equal((KernelActivation.Silu, true), KernelActivations.Of(Activation.SwiGlu));
            Assert.Equal((KernelActivation.GeluTanh, true), KernelActivations.Of(Activation.GeGlu)); // T5 v1.1's gelu_new
            Assert.Equal((KernelActivation.Gelu, false), KernelActivations.Of(Activation.Gelu));
        }

        [Fact]
        public void Launchers_name_the_wrong_argument()
        {
            using var four = Zeros(4);
            using var five = Zeros(5);
            var e = Assert.Throws<ArgumentException>(() => Gpu.ActivationForward(KernelActivation.Relu, four.View, five.View));
            Assert.Contains("ActivationForward: input has 5 elements, the output 4", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.ActivationBackward(KernelActivation.Relu, four.View, four.View, five.View));
            Assert.Contains("ActivationBackward: input has 5 elements, the output 4", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.GatedForward(KernelActivation.Silu, four.View, four.View, five.View));
            Assert.Contains("GatedForward: up has 5 elements, the output 4", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.GatedBackward(KernelActivation.Silu, four.View, five.View, four.View, four.View, four.View));
            Assert.Contains("GatedBackward: dUp has 5 elements, the output 4", e.Message);
            var range = Assert.Throws<ArgumentOutOfRangeException>(() => Gpu.ActivationForward((KernelActivation)9, four.View, four.View));
            Assert.Contains("ActivationForward: unknown activation 9", range.Message);
        }

        /// <summary>|actual - expected| &lt;= Tolerance (1 + |expected|) for every element; the worst is reported.</summary>
        private void AssertElementwise(Tensor expected, float[] actual, string what)
        {
            var e = expected.to_type(float64).contiguous().data<double>().ToArray();
            Assert.Equal(e.Length, actual.Length);
            double worst = 0;
            for (int i = 0; i < e.Length; i++)
            {
                double error = Math.Abs(actual[i] - e[i]) / (1 + Math.Abs(e[i]));
                Assert.True(error <= Tolerance, $"{what}[{i}] = {actual[i]}, expected {e[i]} (error {error:g3} x (1 + |ref|))");
                worst = Math.Max(worst, error);
            }
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{what}: max error {worst:g3} x (1 + |ref|); tolerance {Tolerance:g2}"));
        }
    }
}
