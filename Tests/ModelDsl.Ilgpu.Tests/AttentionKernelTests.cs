using System;
using System.Collections.Generic;
using System.Linq;
using ILGPU;
using ILGPU.Runtime;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static ModelDsl.Ilgpu.Tests.TestDevice;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>
    /// Flash attention forward and backward against libtorch in float64. Two references: libtorch's
    /// scaled_dot_product_attention called as the TorchSharp backend calls it (TransformerModel.Attention: the fused causal
    /// kernel, or an additive mask of the lowest value where a key is hidden plus the position bias), and the elementary
    /// softmax(Scale q k^T + mask) v. The output must match both; the gradients must match libtorch's autograd of the
    /// elementary reference everywhere and of SDPA where every query sees a key (for a query that sees no key the
    /// kernels return the exact derivative of the uniform average the forward computes, which the elementary reference
    /// states explicitly and the finite-difference test confirms). Tolerances, relative to 1 + the largest reference
    /// value of each tensor: 2e-6 for the output (float32 scores of HeadDim products and a softmax: a few ulp), 1e-5 for
    /// lse and the gradients (float32 sums over up to 40 keys or queries and 2 heads, whose terms cancel).
    /// </summary>
    public sealed class AttentionKernelTests
    {
        private const double OutputTolerance = 2e-6;
        private const double GradientTolerance = 1e-5;

        private readonly ITestOutputHelper log;

        public AttentionKernelTests(ITestOutputHelper log) => this.log = log;

        /// <summary>One attention call: its shape, a padding mask (1 = real key, per batch), a bias, one fused qkv buffer.</summary>
        private sealed record Case(AttentionShape Shape, int[]? Padding = null, bool Bias = false, bool Fused = false);

        private static AttentionShape Shape(int batch = 2, int heads = 2, int kvHeads = 2, int headDim = 8, int time = 7, int keyTime = 7,
            int queryOffset = 0, bool causal = false, int window = 0, float? scale = null, bool fused = false)
        {
            int queryStride = fused ? 3 * heads * headDim : heads * headDim, keyStride = fused ? queryStride : kvHeads * headDim;
            return new(batch, heads, kvHeads, headDim, time, keyTime, queryOffset, causal, window, scale ?? 1f / MathF.Sqrt(headDim),
                queryStride, keyStride, keyStride);
        }

        private static int[] Padding(params string[] rows) => rows.SelectMany(r => r.Select(c => c == '1' ? 1 : 0)).ToArray();

        // Time 7: one group of 8 queries, partly empty; the "several tiles" cases cross every tile boundary (8 queries or
        // keys a group, 32 keys or queries a staged tile). Batch 2 where sequences differ (padding, the batch sum of
        // dBias, the fused buffer's row stride), batch 1 elsewhere: the emulator runs every GPU thread as an OS thread.
        private static readonly Dictionary<string, Case> Cases = new()
        {
            ["causal"] = new(Shape(causal: true)),
            ["bidirectional"] = new(Shape(batch: 1)),
            ["one token"] = new(Shape(batch: 1, time: 1, keyTime: 1, causal: true)),
            ["one token after a cache"] = new(Shape(batch: 1, time: 1, keyTime: 7, queryOffset: 6, causal: true)),
            ["queries after a cache"] = new(Shape(time: 3, keyTime: 11, queryOffset: 8, causal: true)),
            // The first three queries of sequence 0 see only padding, and sequence 1 is all padding: uniform attention.
            ["left padding and a fully padded sequence, causal"] = new(Shape(causal: true), Padding("0001111", "0000000")),
            ["right padding, bidirectional"] = new(Shape(), Padding("1111100", "1111111")),
            ["sliding window"] = new(Shape(batch: 1, causal: true, window: 3)),
            ["window without causality"] = new(Shape(batch: 1, window: 3)),
            ["grouped queries, 2 kv heads"] = new(Shape(batch: 1, heads: 4, kvHeads: 2, causal: true)),
            ["grouped queries, 1 kv head, padding"] = new(Shape(heads: 4, kvHeads: 1), Padding("1111110", "1111000")),
            ["T5 encoder: no scaling, bias, padding"] = new(Shape(scale: 1f), Padding("1111100", "1111111"), Bias: true),
            ["T5 decoder: no scaling, bias, causal"] = new(Shape(scale: 1f, causal: true), Bias: true),
            ["strided q, k, v in one fused buffer"] = new(Shape(causal: true, fused: true), Fused: true),
            ["head dim 64"] = new(Shape(batch: 1, headDim: 64, time: 5, keyTime: 5, causal: true)),
            ["several tiles, causal, left padding"] = new(Shape(batch: 1, heads: 1, kvHeads: 1, time: 40, keyTime: 40, causal: true),
                Padding("0000011111111111111111111111111111111111")),
            ["several tiles, window, grouped queries, after a cache"] = new(Shape(batch: 1, kvHeads: 1, time: 35, keyTime: 37, queryOffset: 2,
                causal: true, window: 20)),
        };

        public static IEnumerable<object[]> CaseNames => Cases.Keys.Select(name => new object[] { name });

        [Theory]
        [MemberData(nameof(CaseNames))]
        public void Attention_matches_libtorch_forward_and_backward(string name)
        {
            var c = Cases[name];
            var s = c.Shape;
            long seed = name.Length;
            var inputs = Inputs(c, seed);
            var bias = c.Bias ? Randn(seed + 3, s.Heads, s.Time, s.KeyTime) : null;
            var upstream = Randn(seed + 4, s.Batch, s.Time, s.Heads * s.HeadDim);
            // Gradient buffers start non-zero: the backward adds to them.
            var gradients0 = inputs.Buffers.Select((t, i) => Randn(seed + 10 + i, t.shape)).ToArray();
            var dBias0 = Randn(seed + 20, s.Heads, s.Time, s.KeyTime);

            var (output, lse, gradients, dBias) = RunKernels(c, inputs.Buffers, bias, upstream, gradients0, dBias0);

            var leaves = new List<Tensor> { Leaf(inputs.Q), Leaf(inputs.K), Leaf(inputs.V) };
            if (bias is not null) leaves.Add(Leaf(bias));
            var reference = Reference(leaves[0], leaves[1], leaves[2], bias is null ? null : leaves[3], c);
            var up64 = upstream.to_type(ScalarType.Float64);
            var elementaryGradients = autograd.grad(new[] { (reference.Elementary * up64).sum() }, leaves);
            var sdpaGradients = autograd.grad(new[] { (reference.Sdpa * up64).sum() }, leaves);
            bool everyQuerySeesAKey = reference.SeesNoKey.logical_not().all().item<bool>();

            var errors = new List<string>
            {
                Compare(reference.Sdpa, output, OutputTolerance, "output vs SDPA"),
                Compare(reference.Elementary, output, OutputTolerance, "output vs elementary"),
                CompareLse(reference.Scores.logsumexp(-1), lse),
            };
            foreach (var (expected, source) in everyQuerySeesAKey
                ? new[] { (elementaryGradients, "elementary"), (sdpaGradients, "SDPA") }
                : new[] { (elementaryGradients, "elementary") })
            {
                var inputGradients = c.Fused ? new[] { cat(new[] { expected[0], expected[1], expected[2] }, 2) } : expected.Take(3).ToArray();
                string[] names = c.Fused ? new[] { "dqkv" } : new[] { "dq", "dk", "dv" };
                for (int i = 0; i < names.Length; i++)
                    errors.Add(Compare(gradients0[i].to_type(ScalarType.Float64) + inputGradients[i], gradients[i], GradientTolerance, $"{names[i]} vs {source}"));
                if (bias is not null)
                    errors.Add(Compare(dBias0.to_type(ScalarType.Float64) + expected[3], dBias!, GradientTolerance, $"dBias vs {source}"));
            }
            log.WriteLine($"{name}: " + string.Join(", ", errors));
        }

        /// <summary>
        /// Every gradient of a tiny call with a cache offset, causality, grouped queries, padding (query 0 sees no key)
        /// and a bias, against central differences of the float64 elementary forward with the additive lowest-value
        /// mask: checks the hand-derived backward, and the rule for queries that see no key, without autograd.
        /// </summary>
        [Fact]
        public void Attention_backward_matches_finite_differences()
        {
            var c = new Case(Shape(batch: 1, heads: 2, kvHeads: 1, headDim: 4, time: 3, keyTime: 5, queryOffset: 1, causal: true),
                Padding("00111"), Bias: true);
            var s = c.Shape;
            var inputs = Inputs(c, 5);
            var bias = Randn(8, s.Heads, s.Time, s.KeyTime);
            var upstream = Randn(9, s.Batch, s.Time, s.Heads * s.HeadDim);
            var zeroGradients = inputs.Buffers.Select(t => zeros_like(t)).ToArray();
            var (_, _, gradients, dBias) = RunKernels(c, inputs.Buffers, bias, upstream, zeroGradients, zeros(s.Heads, s.Time, s.KeyTime));

            var up64 = upstream.to_type(ScalarType.Float64);
            using var noGrad = no_grad();
            double Loss(Tensor[] t)
            {
                var scores = Reference(t[0], t[1], t[2], t[3], c).Scores;
                var output = scores.softmax(-1).matmul(Heads(t[2], s.KeyTime, s.KvHeads, s).repeat_interleave(s.Heads / s.KvHeads, 1));
                return (output.transpose(1, 2).reshape(s.Batch, s.Time, -1) * up64).sum().item<double>();
            }
            var fd = FiniteDifferences.Gradients(Loss, 1e-4, inputs.Q, inputs.K, inputs.V, bias);
            var errors = new[]
            {
                Compare(fd[0], gradients[0], GradientTolerance, "dq"),
                Compare(fd[1], gradients[1], GradientTolerance, "dk"),
                Compare(fd[2], gradients[2], GradientTolerance, "dv"),
                Compare(fd[3], dBias!, GradientTolerance, "dBias"),
            };
            log.WriteLine("vs finite differences: " + string.Join(", ", errors));
        }

        /// <summary>
        /// Dropout on the probabilities: the output and every gradient against the elementary reference with the same
        /// mask, regenerated on the host from the seed (the dropout kernel's draw at each probability's index), so the
        /// backward's handling of dropped weights (no dv term, a dk and dq term through the normaliser) is checked
        /// exactly. Rate 0.3; causal with grouped queries and padding (a query that sees no key), and bidirectional with a bias.
        /// </summary>
        [Theory]
        [InlineData(false)]
        [InlineData(true)]
        public void Attention_with_dropout_matches_the_reference_with_the_same_mask(bool bias)
        {
            var c = bias
                ? new Case(Shape(scale: 1f) with { Dropout = 0.3f, DropoutSeed = 99 }, Padding("1111100", "1111111"), Bias: true)
                : new Case(Shape(heads: 4, kvHeads: 2, causal: true) with { Dropout = 0.3f, DropoutSeed = 42 }, Padding("0011111", "1111111"));
            var s = c.Shape;
            var inputs = Inputs(c, 11);
            var biasValues = bias ? Randn(14, s.Heads, s.Time, s.KeyTime) : null;
            var upstream = Randn(15, s.Batch, s.Time, s.Heads * s.HeadDim);
            var zeroGradients = inputs.Buffers.Select(t => zeros_like(t)).ToArray();
            var (output, _, gradients, dBias) = RunKernels(c, inputs.Buffers, biasValues, upstream, zeroGradients, zeros(s.Heads, s.Time, s.KeyTime));

            uint threshold = Kernels.DropThreshold(s.Dropout);
            var mask = new double[s.Batch * s.Heads * s.Time * s.KeyTime];
            for (int i = 0; i < mask.Length; i++)
                mask[i] = (uint)(Kernels.DropoutHash(s.DropoutSeed, i) >> 40) >= threshold ? 1.0 / (1.0 - s.Dropout) : 0.0;
            double kept = mask.Count(m => m != 0) / (double)mask.Length;
            Assert.InRange(kept, 0.5, 0.9); // 1 - 0.3 of 392 or 196 draws

            var leaves = new List<Tensor> { Leaf(inputs.Q), Leaf(inputs.K), Leaf(inputs.V) };
            if (biasValues is not null) leaves.Add(Leaf(biasValues));
            var reference = Reference(leaves[0], leaves[1], leaves[2], biasValues is null ? null : leaves[3], c);
            var probabilities = where(reference.SeesNoKey, full(1, 1, 1, 1, 1.0 / s.KeyTime, ScalarType.Float64), reference.Scores.softmax(-1));
            var dropped = probabilities * tensor(mask, new long[] { s.Batch, s.Heads, s.Time, s.KeyTime });
            var vh = Heads(leaves[2], s.KeyTime, s.KvHeads, s).repeat_interleave(s.Heads / s.KvHeads, 1);
            var expected = dropped.matmul(vh).transpose(1, 2).reshape(s.Batch, s.Time, s.Heads * s.HeadDim);
            var expectedGradients = autograd.grad(new[] { (expected * upstream.to_type(ScalarType.Float64)).sum() }, leaves);

            var errors = new List<string> { Compare(expected, output, OutputTolerance, "output") };
            string[] names = { "dq", "dk", "dv" };
            for (int i = 0; i < 3; i++) errors.Add(Compare(expectedGradients[i], gradients[i], GradientTolerance, names[i]));
            if (biasValues is not null) errors.Add(Compare(expectedGradients[3], dBias!, GradientTolerance, "dBias"));
            log.WriteLine($"dropout 0.3 ({kept:P0} kept){(bias ? ", bias" : "")}: " + string.Join(", ", errors));
        }

        [Fact]
        public void Attention_is_deterministic()
        {
            var c = new Case(Shape(batch: 2, heads: 2, kvHeads: 1, time: 5, keyTime: 5, causal: true), Bias: true);
            var s = c.Shape;
            var inputs = Inputs(c, 3);
            var bias = Randn(4, s.Heads, s.Time, s.KeyTime);
            var upstream = Randn(5, s.Batch, s.Time, s.Heads * s.HeadDim);
            var zeroGradients = inputs.Buffers.Select(t => zeros_like(t)).ToArray();
            var first = RunKernels(c, inputs.Buffers, bias, upstream, zeroGradients, zeros(s.Heads, s.Time, s.KeyTime));
            var second = RunKernels(c, inputs.Buffers, bias, upstream, zeroGradients, zeros(s.Heads, s.Time, s.KeyTime));
            Assert.Equal(Bits(first.Output), Bits(second.Output));
            Assert.Equal(Bits(first.Lse), Bits(second.Lse));
            for (int i = 0; i < first.Gradients.Length; i++) Assert.Equal(Bits(first.Gradients[i]), Bits(second.Gradients[i]));
            Assert.Equal(Bits(first.DBias!), Bits(second.DBias!));
        }

        [Fact]
        public void Attention_launchers_refuse_bad_shapes_and_short_views()
        {
            var s = Shape(batch: 1, heads: 2, kvHeads: 2, headDim: 4, time: 3, keyTime: 3); // q, k, v, output: 24 floats; lse 6
            using var b24 = Zeros(24);
            using var b23 = Zeros(23);
            using var b6 = Zeros(6);
            using var padding2 = Upload(new[] { 1, 1 });
            var none = default(ArrayView<int>);
            void Forward(AttentionShape shape, ArrayView<float> q, ArrayView<float> lse, ArrayView<int> padding = default, ArrayView<float> bias = default)
                => Gpu.AttentionForward(b24.View, lse, q, b24.View, b24.View, padding, bias, shape);

            var e = Assert.Throws<ArgumentException>(() => Forward(s, b23.View, b6.View));
            Assert.Contains("AttentionForward: q has 23 elements, at least 24 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Forward(s, b24.View, b6.View.SubView(0, 5)));
            Assert.Contains("AttentionForward: lse has 5 elements, at least 6 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Forward(s, b24.View, b6.View, padding2.View));
            Assert.Contains("AttentionForward: keyPadding has 2 elements, at least 3 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Forward(s, b24.View, b6.View, none, b6.View));
            Assert.Contains("AttentionForward: bias has 6 elements, at least 18 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Forward(s with { KvHeads = 3, KeyStride = 12, ValueStride = 12 }, b24.View, b6.View));
            Assert.Contains("AttentionForward: Heads (2) is not a multiple of KvHeads (3)", e.Message);
            e = Assert.Throws<ArgumentOutOfRangeException>(() => Forward(s with { HeadDim = 129 }, b24.View, b6.View));
            Assert.Contains("AttentionForward: HeadDim 129 exceeds 128", e.Message);
            e = Assert.Throws<ArgumentOutOfRangeException>(() => Forward(s with { QueryStride = 7 }, b24.View, b6.View));
            Assert.Contains("AttentionForward: QueryStride (7) is shorter than a row (8 floats)", e.Message);
            e = Assert.Throws<ArgumentOutOfRangeException>(() => Forward(s with { Time = 0 }, b24.View, b6.View));
            Assert.Contains("AttentionForward: Time must be positive", e.Message);

            e = Assert.Throws<ArgumentException>(() => Gpu.AttentionBackward(b24.View, b23.View, b24.View, default, b24.View, b24.View, b6.View,
                b24.View, b24.View, b24.View, none, default, s));
            Assert.Contains("AttentionBackward: dk has 23 elements, at least 24 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.AttentionBackward(b24.View, b24.View, b24.View, b6.View, b24.View, b24.View, b6.View,
                b24.View, b24.View, b24.View, none, default, s));
            Assert.Contains("AttentionBackward: dBias has 6 elements, at least 18 needed", e.Message);
            e = Assert.Throws<ArgumentException>(() => Gpu.AttentionBackward(b24.View, b24.View, b24.View, default, b23.View, b24.View, b6.View,
                b24.View, b24.View, b24.View, none, default, s));
            Assert.Contains("AttentionBackward: dOutput has 23 elements, at least 24 needed", e.Message);
        }

        // ---------------------------------------------------------------- helpers

        /// <summary>q, k, v as float32 tensors, and the buffers to upload: one fused [B, T, 3 H D] or three.</summary>
        private static (Tensor Q, Tensor K, Tensor V, Tensor[] Buffers) Inputs(Case c, long seed)
        {
            var s = c.Shape;
            if (c.Fused)
            {
                int width = s.Heads * s.HeadDim;
                var qkv = Randn(seed, s.Batch, s.Time, 3 * width);
                return (qkv.narrow(2, 0, width), qkv.narrow(2, width, width), qkv.narrow(2, 2 * width, width), new[] { qkv });
            }
            var q = Randn(seed, s.Batch, s.Time, s.Heads * s.HeadDim);
            var k = Randn(seed + 1, s.Batch, s.KeyTime, s.KvHeads * s.HeadDim);
            var v = Randn(seed + 2, s.Batch, s.KeyTime, s.KvHeads * s.HeadDim);
            return (q, k, v, new[] { q, k, v });
        }

        /// <summary>Forward then backward on the device; returns output, lse, the gradient buffers (one per input buffer) and dBias.</summary>
        private static (float[] Output, float[] Lse, float[][] Gradients, float[]? DBias) RunKernels(Case c, Tensor[] buffers, Tensor? bias,
            Tensor upstream, Tensor[] gradients0, Tensor? dBias0)
        {
            var s = c.Shape;
            var inputs = buffers.Select(Upload).ToArray();
            var gradients = gradients0.Select(Upload).ToArray();
            using var padding = Upload(c.Padding ?? new int[1]);
            using var biasBuffer = Upload(bias ?? zeros(1));
            using var dBias = Upload(dBias0 ?? zeros(1));
            using var dOutput = Upload(upstream);
            using var output = Zeros((long)s.Batch * s.Time * s.Heads * s.HeadDim);
            using var lse = Zeros((long)s.Batch * s.Heads * s.Time);
            try
            {
                // Fused: the views start at the q, k and v columns of the first row and step 3 H D floats a row.
                int width = s.Heads * s.HeadDim;
                ArrayView<float> View(MemoryBuffer1D<float, Stride1D.Dense>[] b, int i) => c.Fused ? b[0].View.SubView(i * width, b[0].Length - i * width) : b[i].View;
                var paddingView = c.Padding is null ? default : padding.View;
                var biasView = bias is null ? default : biasBuffer.View;
                var dBiasView = bias is null ? default : dBias.View;
                Gpu.AttentionForward(output.View, lse.View, View(inputs, 0), View(inputs, 1), View(inputs, 2), paddingView, biasView, s);
                Gpu.AttentionBackward(View(gradients, 0), View(gradients, 1), View(gradients, 2), dBiasView, dOutput.View, output.View, lse.View,
                    View(inputs, 0), View(inputs, 1), View(inputs, 2), paddingView, biasView, s);
                return (Download(output.View), Download(lse.View), gradients.Select(g => Download(g.View)).ToArray(), bias is null ? null : Download(dBias.View));
            }
            finally
            {
                foreach (var b in inputs.Concat(gradients)) b.Dispose();
            }
        }

        /// <summary>
        /// The references in float64, for q [B, T, H D], k and v [B, K, Hkv D], bias [H, T, K]: heads split, kv heads
        /// repeated, the additive mask (the lowest value where a key is hidden, plus the bias) as TransformerModel.Attention
        /// builds it. Sdpa: libtorch's scaled_dot_product_attention as that method calls it (the fused causal kernel for
        /// plain causal attention, no mask when nothing is masked). Elementary: softmax(Scale q k^T + mask) v, with the
        /// uniform weights 1/K of a query that sees no key written out as constants (they are what float arithmetic leaves
        /// of its scores). Scores [B, H, T, K] include the mask; SeesNoKey [B or 1, 1, T, 1].
        /// </summary>
        private static (Tensor Sdpa, Tensor Elementary, Tensor Scores, Tensor SeesNoKey) Reference(Tensor q, Tensor k, Tensor v, Tensor? bias, Case c)
        {
            var s = c.Shape;
            int groups = s.Heads / s.KvHeads;
            var qh = Heads(q, s.Time, s.Heads, s);
            var kh = Heads(k, s.KeyTime, s.KvHeads, s).repeat_interleave(groups, 1);
            var vh = Heads(v, s.KeyTime, s.KvHeads, s).repeat_interleave(groups, 1);
            var position = arange(s.QueryOffset, s.QueryOffset + s.Time, dtype: ScalarType.Int64).unsqueeze(1);
            var key = arange(0, s.KeyTime, dtype: ScalarType.Int64).unsqueeze(0);
            var allowed = ones(new long[] { s.Time, s.KeyTime }, ScalarType.Bool);
            if (s.Causal) allowed = allowed.logical_and(key.le(position));
            if (s.Window > 0) allowed = allowed.logical_and(key.gt(position - s.Window));
            allowed = allowed.unsqueeze(0).unsqueeze(0);
            if (c.Padding is not null)
                allowed = allowed.logical_and(tensor(c.Padding, new long[] { s.Batch, 1, 1, s.KeyTime }).ne(0));
            var mask = zeros(allowed.shape, ScalarType.Float64).masked_fill(allowed.logical_not(), double.MinValue);
            if (bias is not null) mask = mask + bias.unsqueeze(0);
            var scores = qh.matmul(kh.transpose(-1, -2)) * s.Scale + mask;
            var seesNoKey = allowed.logical_not().all(-1, keepdim: true);
            var elementary = where(seesNoKey, full(1, 1, 1, 1, 1.0 / s.KeyTime, ScalarType.Float64), scores.softmax(-1)).matmul(vh);

            var scaledQ = qh * (s.Scale * Math.Sqrt(s.HeadDim)); // SDPA divides by sqrt(HeadDim) itself
            bool plainCausal = s.Causal && s.Window == 0 && s.QueryOffset == 0 && s.Time == s.KeyTime;
            var sdpa = c.Padding is null && bias is null && (plainCausal || !s.Causal && s.Window == 0)
                ? F.scaled_dot_product_attention(scaledQ, kh, vh, is_casual: plainCausal)
                : F.scaled_dot_product_attention(scaledQ, kh, vh, mask);
            Tensor Merge(Tensor t) => t.transpose(1, 2).reshape(s.Batch, s.Time, s.Heads * s.HeadDim);
            return (Merge(sdpa), Merge(elementary), scores, seesNoKey);
        }

        /// <summary>[B, time, heads HeadDim] to [B, heads, time, HeadDim].</summary>
        private static Tensor Heads(Tensor t, int time, int heads, AttentionShape s) => t.view(s.Batch, time, heads, s.HeadDim).transpose(1, 2);

        private static Tensor Leaf(Tensor t) => t.to_type(ScalarType.Float64).detach().requires_grad_(true);

        private static int[] Bits(float[] values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();

        /// <summary>|actual - expected| &lt;= tolerance (1 + max |expected|) everywhere; returns the largest error relative to that scale.</summary>
        private static string Compare(Tensor expected, float[] actual, double tolerance, string what)
        {
            var e = expected.detach().to_type(ScalarType.Float64).contiguous().data<double>().ToArray();
            Assert.True(e.Length == actual.Length, $"{what}: {actual.Length} elements, expected {e.Length}");
            double scale = 1 + e.Max(Math.Abs), worst = 0;
            for (int i = 0; i < e.Length; i++)
            {
                double error = Math.Abs(actual[i] - e[i]);
                Assert.False(float.IsNaN(actual[i]), $"{what}[{i}] is NaN");
                Assert.True(error <= tolerance * scale, $"{what}[{i}] = {actual[i]}, expected {e[i]} (error {error:g3}, allowed {tolerance * scale:g3})");
                worst = Math.Max(worst, error / scale);
            }
            return FormattableString.Invariant($"{what} {worst:0.0e0}");
        }

        /// <summary>lse against logsumexp of the masked scores; a query that sees no key must hold exactly float.MinValue.</summary>
        private static string CompareLse(Tensor expected, float[] actual)
        {
            var e = expected.detach().contiguous().data<double>().ToArray();
            var seen = e.Select((x, i) => (x, i)).Where(p => p.x != double.MinValue).ToArray();
            foreach (var (x, i) in e.Select((x, i) => (x, i)).Where(p => p.x == double.MinValue))
                Assert.True(actual[i] == float.MinValue, $"lse[{i}] = {actual[i]} for a query that sees no key; expected float.MinValue");
            return Compare(tensor(seen.Select(p => p.x).ToArray()), seen.Select(p => actual[p.i]).ToArray(), GradientTolerance, "lse")
                + (seen.Length < e.Length ? $" ({e.Length - seen.Length} rows see no key)" : "");
        }
    }
}
