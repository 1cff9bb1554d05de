using System.Linq;
using ILGPU.Runtime;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static ModelDsl.Ilgpu.Tests.KernelChecks;
using static ModelDsl.Ilgpu.Tests.TestDevice;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>
    /// The mixture-of-experts kernels against float64 references with autograd: the router as the TorchSharp backend
    /// routes (softmax, topk, renormalised for Mixtral, raw for Switch's top-1) and the experts as the explicit sum over
    /// each token's slots of weight x down_e f(up_e x) (gated: down_e (f(gate_e x) * up_e x)). Tolerance 1e-5 of
    /// 1 + max|reference|: float32 dot products of at most a few dozen terms.
    /// </summary>
    public sealed class ExpertsKernelTests(ITestOutputHelper output)
    {
        private const double Tolerance = 1e-5;

        [Theory]
        [InlineData(2, true)]
        [InlineData(1, false)]
        public void Router_matches_softmax_topk_and_its_autograd(int topK, bool renormalize)
        {
            const int tokens = 9, experts = 5;
            var logits = Randn(1, tokens, experts) * 2;
            var dy = Randn(2, tokens, topK);
            using var deviceLogits = Upload(logits);
            using var weights = Zeros(tokens * topK);
            using var selected = Upload(new int[tokens * topK]);
            using var dWeights = Upload(dy);
            using var dLogits = Filled(tokens * experts, 0.5f);
            Gpu.RouterForward(weights.View, selected.View, deviceLogits.View, tokens, experts, topK, renormalize);
            Gpu.RouterBackward(dLogits.View, dWeights.View, deviceLogits.View, selected.View, tokens, experts, topK, renormalize);

            var leaf = Leaf(logits);
            var (values, indices) = leaf.softmax(-1).topk(topK, -1);
            if (renormalize) values = values / values.sum(-1, keepdim: true);
            (values * F64(dy)).sum().backward();
            var chosen = new int[tokens * topK];
            selected.View.AsContiguous().CopyToCPU(chosen);
            Assert.Equal(indices.data<long>().Select(i => (int)i).ToArray(), chosen);
            AssertNear(values, Download(weights.View), Tolerance, $"top-{topK} weights", output);
            AssertNear(GradOf(leaf) + 0.5, Download(dLogits.View), Tolerance, $"dLogits + 0.5 (top-{topK})", output);
        }

        /// <summary>
        /// The load-balancing and z losses over two layers' routing, against the TorchSharp backend's Routing functions on
        /// the layers' logits concatenated (Hugging Face's formula) and their autograd: the statistics accumulate across
        /// layers before the loss, and each layer's backward reads the finished statistics.
        /// </summary>
        [Fact]
        public void Routing_loss_over_two_layers_matches_the_torchsharp_backends_and_its_autograd()
        {
            const int tokens = 6, experts = 4, topK = 2;
            const float weight = 1f, zWeight = 0.5f; // large, so the gradients are of order one and the tolerance bites
            var layers = new[] { Randn(9, tokens, experts) * 2, Randn(10, tokens, experts) * 2 };
            using var statistics = Zeros(Kernels.RoutingStatisticsLength(experts, topK));
            using var loss = Zeros(1);
            var selections = layers.Select(l => l.softmax(-1).topk(topK, -1).indexes).ToArray();
            var logitBuffers = layers.Select(l => Upload(l)).ToArray();
            var selectedBuffers = selections.Select(i => Upload(i.data<long>().Select(v => (int)v).ToArray())).ToArray();
            var gradients = layers.Select(_ => Filled(tokens * experts, 0.5f)).ToArray();
            try
            {
                for (int l = 0; l < 2; l++) Gpu.RoutingStatistics(statistics.View, logitBuffers[l].View, selectedBuffers[l].View, tokens, experts, topK);
                Gpu.RoutingLoss(loss.View, statistics.View, 2 * tokens, experts, topK, weight, zWeight);
                for (int l = 0; l < 2; l++)
                    Gpu.RoutingLossBackward(gradients[l].View, logitBuffers[l].View, statistics.View, tokens, 2 * tokens, experts, topK, weight, zWeight, 1f);

                var leaves = layers.Select(Leaf).ToArray();
                var all = cat(leaves, 0);
                var expected = ModelDsl.TorchSharp.Routing.LoadBalancingLoss(all, cat(selections, 0), experts) * weight
                    + ModelDsl.TorchSharp.Routing.ZLoss(all) * zWeight;
                expected.backward();
                AssertNear(expected, Download(loss.View), 1e-6, "routing loss", output);
                for (int l = 0; l < 2; l++)
                    AssertNear(GradOf(leaves[l]) + 0.5, Download(gradients[l].View), 1e-6, $"dLogits + 0.5, layer {l}", output);
            }
            finally
            {
                foreach (var b in logitBuffers.Concat(gradients)) b.Dispose();
                foreach (var b in selectedBuffers) b.Dispose();
            }
        }

        /// <summary>
        /// nn.Linear's [out, in] experts (Mixtral's) and, with <paramref name="inOut"/>, GPT-2 Conv1D's [in, out]: the
        /// kernels read the transposed storage in place and write the gradients in it.
        /// </summary>
        [Theory]
        [InlineData(KernelActivation.GeluTanh, false, false)]
        [InlineData(KernelActivation.Silu, true, false)]
        [InlineData(KernelActivation.GeluTanh, false, true)]
        [InlineData(KernelActivation.Silu, true, true)]
        public void Experts_match_the_explicit_sum_and_its_autograd(KernelActivation function, bool gated, bool inOut)
        {
            const int tokens = 5, hidden = 6, inner = 4, experts = 3, topK = 2;
            var shape = new ExpertsShape(tokens, hidden, inner, experts, topK, function, gated, inOut);
            // Storage order: [experts, out, in], or its transpose per expert.
            Tensor Stored(Tensor w) => inOut ? w.transpose(1, 2).contiguous() : w;
            var x = Randn(3, tokens, hidden);
            var up = Randn(4, experts, inner, hidden) * 0.5;
            var gate = Randn(5, experts, inner, hidden) * 0.5;
            var down = Randn(6, experts, hidden, inner) * 0.5;
            var weights = Randn(7, tokens, topK).abs();
            // Every expert used, one twice by a token's two slots' neighbours; a token's two slots differ.
            var routes = new[] { 0, 2, 1, 0, 2, 1, 0, 1, 2, 0 };
            var dy = Randn(8, tokens, hidden);

            using var dx = Upload(x);
            using var dUpW = Upload(Stored(up));
            using var dGateW = Upload(Stored(gate));
            using var dDownW = Upload(Stored(down));
            using var dW = Upload(weights);
            using var selected = Upload(routes);
            using var y = Zeros(tokens * hidden);
            using var upPre = Zeros(tokens * topK * inner);
            using var gatePre = Zeros(tokens * topK * inner);
            using var dOutput = Upload(dy);
            using var gradX = Filled(tokens * hidden, 0.25f);
            using var gradWeights = Filled(tokens * topK, 0.25f);
            using var gradUp = Filled(up.numel(), 0.25f);
            using var gradGate = Filled(gate.numel(), 0.25f);
            using var gradDown = Filled(down.numel(), 0.25f);
            var gateView = gated ? dGateW.View : default;
            Gpu.ExpertsForward(y.View, upPre.View, gatePre.View, dx.View, dW.View, selected.View, dUpW.View, gateView, dDownW.View, shape);
            Gpu.ExpertsBackward(gradX.View, gradWeights.View, gradUp.View, gated ? gradGate.View : default, gradDown.View, dOutput.View,
                upPre.View, gatePre.View, dx.View, dW.View, selected.View, dUpW.View, gateView, dDownW.View, shape);

            var (xr, ur, gr, dr, wr) = (Leaf(x), Leaf(up), Leaf(gate), Leaf(down), Leaf(weights));
            var index = tensor(routes.Select(r => (long)r).ToArray());
            var upSelected = ur.index_select(0, index).view(tokens, topK, inner, hidden);
            var u = einsum("nh,nkih->nki", xr, upSelected);
            Tensor Activate(Tensor t) => function == KernelActivation.Silu ? F.silu(t) : F.gelu(t, global::TorchSharp.Modules.GELU.Approximate.tanh);
            var a = gated ? Activate(einsum("nh,nkih->nki", xr, gr.index_select(0, index).view(tokens, topK, inner, hidden))) * u : Activate(u);
            var perSlot = einsum("nki,nkci->nkc", a, dr.index_select(0, index).view(tokens, topK, hidden, inner));
            var reference = einsum("nk,nkc->nc", wr, perSlot);
            (reference * F64(dy)).sum().backward();

            AssertNear(reference, Download(y.View), Tolerance, $"{function} experts output", output);
            AssertNear(GradOf(xr) + 0.25, Download(gradX.View), Tolerance, "dx + 0.25", output);
            AssertNear(GradOf(wr) + 0.25, Download(gradWeights.View), Tolerance, "dWeights + 0.25", output);
            AssertNear(Stored(GradOf(ur)) + 0.25, Download(gradUp.View), Tolerance, "dUp + 0.25", output);
            AssertNear(Stored(GradOf(dr)) + 0.25, Download(gradDown.View), Tolerance, "dDown + 0.25", output);
            if (gated) AssertNear(Stored(GradOf(gr)) + 0.25, Download(gradGate.View), Tolerance, "dGate + 0.25", output);
        }
    }
}
