using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>
    /// Grouped-query attention, a sliding window, RMSNorm and bias-free projections, against a forward pass written
    /// here from elementary ops (index_select, x / sqrt(mean(x^2) + eps), an explicit -inf mask, exp / sum, matmul with
    /// each key/value head repeated for its group of query heads). Tolerances as in <see cref="GeneratedGptNumericsTests"/>.
    /// </summary>
    public sealed class ModernDecoderNumericsTests
    {
        private readonly ITestOutputHelper log;

        public ModernDecoderNumericsTests(ITestOutputHelper log) => this.log = log;

        private const int Heads = TinyWindowGqaDecoder.TorchSharpModel.Heads;
        private const int KvHeads = TinyWindowGqaDecoder.TorchSharpModel.KvHeads;
        private const int Window = 5;

        internal static Tensor ReferenceLogits(IReadOnlyDictionary<string, Tensor> p, Tensor ids, double epsilon)
        {
            long batch = ids.shape[0], time = ids.shape[1];
            var embed = p["model.embed_tokens.weight"];
            long hidden = embed.shape[1], headDim = hidden / Heads;
            var x = embed.index_select(0, ids.flatten()).view(batch, time, hidden)
                    + p["model.embed_positions.weight"].index_select(0, torch.arange(time, dtype: ScalarType.Int64));
            var query = torch.arange(time, dtype: ScalarType.Int64).unsqueeze(1);
            var key = torch.arange(time, dtype: ScalarType.Int64).unsqueeze(0);
            var hidden_ = key.gt(query).logical_or(key.le(query - Window)); // after the query, or Window or more before it

            Tensor Rms(Tensor v, string name) => v / ((v * v).mean(new long[] { -1 }, keepdim: true) + epsilon).sqrt() * p[name + ".weight"];
            Tensor Split(Tensor v, int heads) => v.view(batch, time, heads, headDim).permute(0, 2, 1, 3);
            for (int layer = 0; layer < 2; layer++)
            {
                string l = $"model.layers.{layer}.";
                var h = Rms(x, l + "input_layernorm");
                var q = Split(h.matmul(p[l + "self_attn.q_proj.weight"].t()), Heads);
                var k = Split(h.matmul(p[l + "self_attn.k_proj.weight"].t()), KvHeads);
                var v = Split(h.matmul(p[l + "self_attn.v_proj.weight"].t()), KvHeads);
                // Query head j reads key/value head j / (Heads / KvHeads).
                var groupOf = torch.tensor(Enumerable.Range(0, Heads).Select(j => (long)(j / (Heads / KvHeads))).ToArray());
                k = k.index_select(1, groupOf);
                v = v.index_select(1, groupOf);
                var scores = q.matmul(k.transpose(-2, -1)) / Math.Sqrt(headDim);
                scores = scores.masked_fill(hidden_, double.NegativeInfinity);
                var e = (scores - scores.amax(new long[] { -1 }, keepdim: true)).exp();
                var y = (e / e.sum(-1, keepdim: true)).matmul(v).permute(0, 2, 1, 3).reshape(batch, time, hidden);
                x = x + y.matmul(p[l + "self_attn.o_proj.weight"].t());
                var m = Rms(x, l + "post_attention_layernorm");
                x = x + m.matmul(p[l + "mlp.up_proj.weight"].t()).clamp_min(0).matmul(p[l + "mlp.down_proj.weight"].t());
            }
            return Rms(x, "model.norm").matmul(p["lm_head.weight"].t());
        }

        [Fact]
        public void Names_follow_Mistral_and_projections_have_no_bias()
        {
            using var model = TinyWindowGqaDecoder.CreateTorchSharp();
            var names = model.named_parameters().Select(n => n.name).ToHashSet();
            Assert.Equal("Mistral", model.Card.Layout); // Llama's names; a window makes it Mistral
            Assert.Contains("model.layers.1.self_attn.k_proj.weight", names);
            Assert.Equal(new long[] { KvHeads * 8, 32 }, model.named_parameters().First(n => n.name == "model.layers.0.self_attn.v_proj.weight").parameter.shape);
            Assert.DoesNotContain(names, n => n.EndsWith(".bias", StringComparison.Ordinal));
            Assert.Contains("model.norm.weight", names);
            Assert.Contains("lm_head.weight", names);
        }

        [Theory]
        [InlineData(ScalarType.Float64)]
        [InlineData(ScalarType.Float32)]
        public void Logits_and_gradients_match_an_elementary_reference(ScalarType dtype)
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var model = TinyWindowGqaDecoder.CreateTorchSharp();
            model.to(dtype);
            Numerics.Randomize(model, 71);
            model.eval();
            var p = Numerics.Parameters(model);
            var ids = Numerics.RandomIds(2, 16, 50, 72);
            var targets = Numerics.RandomIds(2, 16, 50, 73);

            var loss = model.Loss(ids, targets);
            var expected = GeneratedGptNumericsTests.ReferenceLoss(ReferenceLogits(p, ids, 1e-6), targets);
            Numerics.AssertClose(model.Forward(ids).Logits, ReferenceLogits(p, ids, 1e-6), atol, rtol, $"{dtype} logits", log);
            Numerics.AssertClose(loss, expected, atol, rtol, $"{dtype} loss", log);

            var generated = p.ToDictionary(kv => kv.Key, kv => torch.autograd.grad(new[] { loss }, new[] { kv.Value }, retain_graph: true)[0]);
            foreach (var (name, tensor) in p)
            {
                var reference = torch.autograd.grad(new[] { expected }, new[] { tensor }, retain_graph: true)[0];
                Numerics.AssertClose(generated[name], reference, atol, rtol, $"{dtype} d loss / d {name}");
            }
        }

        [Fact]
        public void Cached_decoding_with_a_window_equals_the_full_forward()
        {
            using var scope = torch.NewDisposeScope();
            var model = TinyWindowGqaDecoder.CreateTorchSharp();
            model.to(ScalarType.Float64);
            Numerics.Randomize(model, 81);
            model.eval();
            using var noGrad = torch.no_grad();
            var ids = Numerics.RandomIds(2, 16, 50, 82);
            var full = model.Forward(ids).Logits;
            using var cache = model.CreateCache(2);
            var parts = new List<Tensor> { model.Forward(ids.narrow(1, 0, 7), cache).Logits };
            for (int t = 7; t < 16; t++) parts.Add(model.Forward(ids.narrow(1, t, 1), cache).Logits);
            Numerics.AssertClose(torch.cat(parts.ToArray(), 1), full, 1e-10, 1e-10, "cached vs full", log);
        }
    }
}

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>
    /// Rotary positions, SwiGLU and Llama's names. Rotary is checked against the explicit pair rotation of the RoPE
    /// paper written here by hand: in Hugging Face's rotate-half convention, channel i of a head is paired with channel
    /// i + D/2 and the pair is rotated by the angle p * base^(-2i/D) for position p.
    /// </summary>
    public sealed class LlamaNumericsTests
    {
        private readonly ITestOutputHelper log;

        public LlamaNumericsTests(ITestOutputHelper log) => this.log = log;

        /// <summary>(x_i, x_{i+D/2}) → (x_i cos θ - x_{i+D/2} sin θ, x_i sin θ + x_{i+D/2} cos θ), element by element in C#.</summary>
        private static double[,,] RotatePairs(double[,,] x, int headDim, double @base, long offset)
        {
            int time = x.GetLength(0), heads = x.GetLength(1);
            var y = new double[time, heads, headDim];
            for (int t = 0; t < time; t++)
                for (int h = 0; h < heads; h++)
                    for (int i = 0; i < headDim / 2; i++)
                    {
                        double angle = (t + offset) * Math.Pow(@base, -2.0 * i / headDim);
                        double a = x[t, h, i], b = x[t, h, i + headDim / 2];
                        y[t, h, i] = a * Math.Cos(angle) - b * Math.Sin(angle);
                        y[t, h, i + headDim / 2] = a * Math.Sin(angle) + b * Math.Cos(angle);
                    }
            return y;
        }

        [Theory]
        [InlineData(0L)]
        [InlineData(5L)] // after 5 cached positions
        public void Rotary_rotates_each_channel_pair_by_position_times_frequency(long offset)
        {
            using var scope = torch.NewDisposeScope();
            const int time = 6, heads = 3, kvHeads = 1, headDim = 8;
            using var generator = new Generator(5);
            var q = torch.randn(new long[] { 1, time, heads * headDim }, ScalarType.Float64, generator: generator);
            var k = torch.randn(new long[] { 1, time, kvHeads * headDim }, ScalarType.Float64, generator: generator);
            using var cache = new KvCache("test", 1, 1, kvHeads, 32, headDim, torch.CPU, ScalarType.Float64);
            cache.Advance((int)offset);
            var (qr, kr) = TransformerModel.Rotary(q, k, headDim, 500.0, new ForwardState(cache));

            double[,,] Array3(Tensor t, int h)
            {
                var data = t.view(time, h, headDim).data<double>().ToArray();
                var a = new double[time, h, headDim];
                Buffer.BlockCopy(data, 0, a, 0, data.Length * sizeof(double));
                return a;
            }
            Tensor Back(double[,,] a, int h)
            {
                var flat = new double[a.Length];
                Buffer.BlockCopy(a, 0, flat, 0, flat.Length * sizeof(double));
                return torch.tensor(flat).view(1, time, h * headDim);
            }
            Numerics.AssertClose(qr, Back(RotatePairs(Array3(q, heads), headDim, 500.0, offset), heads), 1e-12, 1e-12, $"queries, offset {offset}", log);
            Numerics.AssertClose(kr, Back(RotatePairs(Array3(k, kvHeads), headDim, 500.0, offset), kvHeads), 1e-12, 1e-12, $"keys, offset {offset}", log);
        }

        [Fact]
        public void Rotary_scores_depend_only_on_relative_position()
        {
            // The property RoPE exists for: q(m) . k(n) after rotation depends on m - n, not on m and n.
            using var scope = torch.NewDisposeScope();
            var q = torch.ones(new long[] { 1, 1, 8 }, ScalarType.Float64);
            var k = torch.linspace(-1, 1, 8, ScalarType.Float64).view(1, 1, 8);
            double Score(int m, int n)
            {
                using var cq = new KvCache("t", 1, 1, 1, 64, 8, torch.CPU, ScalarType.Float64);
                cq.Advance(m);
                using var ck = new KvCache("t", 1, 1, 1, 64, 8, torch.CPU, ScalarType.Float64);
                ck.Advance(n);
                var (qm, _) = TransformerModel.Rotary(q, q, 8, 10000, new ForwardState(cq));
                var (_, kn) = TransformerModel.Rotary(k, k, 8, 10000, new ForwardState(ck));
                return (qm * kn).sum().item<double>();
            }
            Assert.Equal(Score(3, 1), Score(12, 10), 12);
            Assert.NotEqual(Score(3, 1), Score(3, 2), 6);
        }

        internal static Tensor ReferenceLogits(IReadOnlyDictionary<string, Tensor> p, Tensor ids)
        {
            long batch = ids.shape[0], time = ids.shape[1];
            const int heads = 4, kvHeads = 2, headDim = 8;
            var x = p["model.embed_tokens.weight"].index_select(0, ids.flatten()).view(batch, time, 32);
            var future = torch.ones(time, time, ScalarType.Bool).triu(1);
            var angles = torch.arange(time, dtype: ScalarType.Float64).unsqueeze(1)
                         * torch.tensor(Enumerable.Range(0, headDim / 2).Select(i => Math.Pow(500.0, -2.0 * i / headDim)).ToArray()).unsqueeze(0);
            var cos = torch.cat(new[] { angles.cos(), angles.cos() }, -1).to(x.dtype).unsqueeze(1); // [T, 1, D]
            var sin = torch.cat(new[] { angles.sin(), angles.sin() }, -1).to(x.dtype).unsqueeze(1);
            Tensor Rope(Tensor v, int h)
            {
                var split = v.view(batch, time, h, headDim);
                var rotated = torch.cat(new[] { -split.narrow(-1, headDim / 2, headDim / 2), split.narrow(-1, 0, headDim / 2) }, -1);
                return split * cos + rotated * sin; // [B, T, H, D]
            }
            Tensor Rms(Tensor v, string name) => v / ((v * v).mean(new long[] { -1 }, keepdim: true) + 1e-6).sqrt() * p[name + ".weight"];
            var groupOf = torch.tensor(new long[] { 0, 0, 1, 1 });
            for (int layer = 0; layer < 2; layer++)
            {
                string l = $"model.layers.{layer}.";
                var h = Rms(x, l + "input_layernorm");
                var q = Rope(h.matmul(p[l + "self_attn.q_proj.weight"].t()), heads).permute(0, 2, 1, 3);
                var k = Rope(h.matmul(p[l + "self_attn.k_proj.weight"].t()), kvHeads).permute(0, 2, 1, 3).index_select(1, groupOf);
                var v = h.matmul(p[l + "self_attn.v_proj.weight"].t()).view(batch, time, kvHeads, headDim).permute(0, 2, 1, 3).index_select(1, groupOf);
                var scores = (q.matmul(k.transpose(-2, -1)) / Math.Sqrt(headDim)).masked_fill(future, double.NegativeInfinity);
                var e = (scores - scores.amax(new long[] { -1 }, keepdim: true)).exp();
                var y = (e / e.sum(-1, keepdim: true)).matmul(v).permute(0, 2, 1, 3).reshape(batch, time, 32);
                x = x + y.matmul(p[l + "self_attn.o_proj.weight"].t());
                var m = Rms(x, l + "post_attention_layernorm");
                var gate = m.matmul(p[l + "mlp.gate_proj.weight"].t());
                var silu = gate / (1 + (-gate).exp());
                x = x + (silu * m.matmul(p[l + "mlp.up_proj.weight"].t())).matmul(p[l + "mlp.down_proj.weight"].t());
            }
            return Rms(x, "model.norm").matmul(p["lm_head.weight"].t());
        }

        [Theory]
        [InlineData(ScalarType.Float64)]
        [InlineData(ScalarType.Float32)]
        public void TinyLlama_logits_loss_and_gradients_match_an_elementary_reference(ScalarType dtype)
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var model = TinyLlama.CreateTorchSharp();
            model.to(dtype);
            Numerics.Randomize(model, 91);
            model.eval();
            var p = Numerics.Parameters(model);
            var ids = Numerics.RandomIds(2, 16, 50, 92);
            var targets = Numerics.RandomIds(2, 16, 50, 93);
            Numerics.AssertClose(model.Forward(ids).Logits, ReferenceLogits(p, ids), atol, rtol, $"{dtype} logits", log);
            var loss = model.Loss(ids, targets);
            var expected = GeneratedGptNumericsTests.ReferenceLoss(ReferenceLogits(p, ids), targets);
            Numerics.AssertClose(loss, expected, atol, rtol, $"{dtype} loss", log);
            foreach (var (name, tensor) in p)
            {
                var generated = torch.autograd.grad(new[] { loss }, new[] { tensor }, retain_graph: true)[0];
                var reference = torch.autograd.grad(new[] { expected }, new[] { tensor }, retain_graph: true)[0];
                Numerics.AssertClose(generated, reference, atol, rtol, $"{dtype} d loss / d {name}");
            }
        }

        [Fact]
        public void Cached_rotary_decoding_equals_the_full_forward()
        {
            using var scope = torch.NewDisposeScope();
            var model = TinyLlama.CreateTorchSharp();
            model.to(ScalarType.Float64);
            Numerics.Randomize(model, 94);
            model.eval();
            using var noGrad = torch.no_grad();
            var ids = Numerics.RandomIds(1, 16, 50, 95);
            var full = model.Forward(ids).Logits;
            using var cache = model.CreateCache(1);
            var parts = new List<Tensor> { model.Forward(ids.narrow(1, 0, 9), cache).Logits };
            for (int t = 9; t < 16; t++) parts.Add(model.Forward(ids.narrow(1, t, 1), cache).Logits);
            Numerics.AssertClose(torch.cat(parts.ToArray(), 1), full, 1e-10, 1e-10, "cached vs full", log);
        }

        [Fact]
        public void Llama_names_round_trip_through_safetensors()
        {
            using var scope = torch.NewDisposeScope();
            var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"tiny-llama-{Guid.NewGuid():N}.safetensors");
            try
            {
                var model = TinyLlama.CreateTorchSharp();
                Numerics.Randomize(model, 96);
                model.SaveSafetensors(path);
                var header = ModelDsl.Checkpoints.SafetensorsFile.ReadHeader(path);
                Assert.Equal(new long[] { 16, 32 }, header.Tensors["model.layers.1.self_attn.k_proj.weight"].Shape); // KvHeads x HeadDim rows
                Assert.Equal(new long[] { 48, 32 }, header.Tensors["model.layers.0.mlp.gate_proj.weight"].Shape);
                Assert.Contains("lm_head.weight", header.Tensors.Keys);
                Assert.DoesNotContain(header.Tensors.Keys, n => n.EndsWith(".bias", StringComparison.Ordinal));
                var copy = TinyLlama.CreateTorchSharp();
                copy.LoadSafetensors(path);
                var ids = Numerics.RandomIds(1, 8, 50, 97);
                Assert.True(Numerics.Identical(model.Forward(ids).Logits, copy.Forward(ids).Logits));
            }
            finally
            {
                System.IO.File.Delete(path);
            }
        }
    }
}
