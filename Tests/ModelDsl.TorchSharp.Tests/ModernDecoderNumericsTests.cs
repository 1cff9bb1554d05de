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
