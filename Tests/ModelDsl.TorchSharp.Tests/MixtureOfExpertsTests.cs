using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using ModelDsl.Training;
using ModelDsl.TorchSharp.Training;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>
    /// Mixture-of-experts layers (TinyMoeGpt: top-2 of 4 in every layer; TinySwitchGpt: top-1 of 4 in layers 1 and 3;
    /// TinyMixtral: gated SiLU experts under Mixtral's names) against references written here from elementary ops:
    /// softmax as exp / sum, the top-k as "at least the k-th largest probability" (by sorting), and every expert run on
    /// every token, masked by the routing. The load-balancing loss is Hugging Face's load_balancing_loss_func, written
    /// as E x sum_e f_e P_e; hand-computed cases pin it and the z-loss to exact numbers. Tolerances as in
    /// <see cref="GeneratedGptNumericsTests"/>: float64 1e-10 + 1e-10 max|ref|, float32 1e-5 + 1e-5 max|ref|.
    /// </summary>
    public sealed class MixtureOfExpertsTests
    {
        private const int Experts = 4;
        private readonly ITestOutputHelper log;

        public MixtureOfExpertsTests(ITestOutputHelper log) => this.log = log;

        // ------------------------------------------------------------------------------------------------------
        // The models and their references
        // ------------------------------------------------------------------------------------------------------

        /// <summary>What each MoE declaration says, restated here; MixtureOfExperts is the generated sub-layer method.</summary>
        private sealed record MoeModel(CausalLanguageModel Model, int TopK, bool Renormalize, int[] ExpertLayers, string Prefix,
            Func<Tensor, int, ForwardState, Tensor> MixtureOfExperts, Func<IReadOnlyDictionary<string, Tensor>, int, Tensor, int, Tensor> Expert)
        {
            public string Gate(int layer) => $"{Prefix}{layer}.{(Prefix.StartsWith("model", StringComparison.Ordinal) ? "block_sparse_moe" : "mlp")}.gate.weight";
        }

        private static MoeModel Create(string kind)
        {
            switch (kind)
            {
                case nameof(TinyMoeGpt):
                {
                    var m = TinyMoeGpt.CreateTorchSharp();
                    return new MoeModel(m, 2, true, new[] { 0, 1 }, "transformer.h.", m.MixtureOfExperts,
                        (p, layer, x, e) => GeluTanh(x.matmul(p[$"transformer.h.{layer}.mlp.experts.{e}.c_fc.weight"])).matmul(p[$"transformer.h.{layer}.mlp.experts.{e}.c_proj.weight"]));
                }
                case nameof(TinySwitchGpt):
                {
                    var m = TinySwitchGpt.CreateTorchSharp();
                    return new MoeModel(m, 1, false, new[] { 1, 3 }, "transformer.h.", m.MixtureOfExperts,
                        (p, layer, x, e) => x.matmul(p[$"transformer.h.{layer}.mlp.experts.{e}.c_fc.weight"]).clamp_min(0).matmul(p[$"transformer.h.{layer}.mlp.experts.{e}.c_proj.weight"]));
                }
                case nameof(TinyMixtral):
                {
                    var m = TinyMixtral.CreateTorchSharp();
                    // Mixtral's expert: w2(silu(w1 x) * w3 x), weights [out, in].
                    return new MoeModel(m, 2, true, new[] { 0, 1 }, "model.layers.", m.MixtureOfExperts, (p, layer, x, e) =>
                    {
                        string w = $"model.layers.{layer}.block_sparse_moe.experts.{e}.";
                        var gate = x.matmul(p[w + "w1.weight"].t());
                        return (gate / (1 + (-gate).exp()) * x.matmul(p[w + "w3.weight"].t())).matmul(p[w + "w2.weight"].t());
                    });
                }
                default:
                    throw new ArgumentException(kind, nameof(kind));
            }
        }

        private static Tensor GeluTanh(Tensor v) => 0.5 * v * (1 + (Math.Sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)).tanh());

        /// <summary>
        /// <see cref="Numerics.Randomize"/>, then routers N(0, 1/sqrt(Hidden)): router logits of O(1), so routing is
        /// neither uniform nor one-hot and no two probabilities a token compares are close.
        /// </summary>
        private static Dictionary<string, Tensor> Randomize(MoeModel m, ScalarType dtype, ulong seed)
        {
            m.Model.to(dtype);
            Numerics.Randomize(m.Model, seed);
            var p = Numerics.Parameters(m.Model);
            using var generator = new Generator(seed + 1);
            using (torch.no_grad())
                foreach (int layer in m.ExpertLayers)
                    p[m.Gate(layer)].normal_(0.0, 1.0 / Math.Sqrt(p[m.Gate(layer)].shape[1]), generator);
            m.Model.eval();
            return p;
        }

        /// <summary>One layer's routing by hand: logits x W^T, softmax as exp / sum, the top k as the probabilities at least the k-th largest.</summary>
        private sealed record ReferenceRouting(Tensor Logits, Tensor Probabilities, Tensor Chosen, Tensor Weights);

        private static ReferenceRouting Route(Tensor tokens, Tensor gate, int topK, bool renormalize)
        {
            var logits = tokens.matmul(gate.t());                                                   // [N, E]
            var e = (logits - logits.amax(new long[] { -1 }, keepdim: true)).exp();
            var probabilities = e / e.sum(-1, keepdim: true);
            var kth = probabilities.detach().sort(-1, descending: true).Values.narrow(-1, topK - 1, 1);
            var chosen = probabilities.detach().ge(kth);                                            // [N, E] bool
            var weights = probabilities * chosen.to(probabilities.dtype);
            if (renormalize) weights = weights / weights.sum(-1, keepdim: true);
            return new ReferenceRouting(logits, probabilities, chosen, weights);
        }

        /// <summary>The dense reference of a sparse layer: every expert on every token, weighted by the routing (0 where not chosen).</summary>
        private static (Tensor Y, ReferenceRouting Routing) ReferenceMoe(MoeModel m, IReadOnlyDictionary<string, Tensor> p, Tensor h, int layer)
        {
            var tokens = h.reshape(-1, h.shape[^1]);
            var routing = Route(tokens, p[m.Gate(layer)], m.TopK, m.Renormalize);
            var y = torch.zeros_like(tokens);
            for (int e = 0; e < Experts; e++)
                y = y + routing.Weights.narrow(1, e, 1) * m.Expert(p, layer, tokens, e);
            return (y.view(h.shape), routing);
        }

        /// <summary>
        /// Hugging Face's load_balancing_loss_func by its formula: over all layers' tokens at once, f_e = the share of
        /// tokens that chose e (summed over the k choices), P_e = the mean probability of e; loss = E x sum_e f_e P_e.
        /// </summary>
        private static Tensor ReferenceBalancingLoss(IEnumerable<ReferenceRouting> layers)
        {
            var routings = layers.ToList();
            var chosen = torch.cat(routings.Select(r => r.Chosen).ToArray(), 0);
            var probabilities = torch.cat(routings.Select(r => r.Probabilities).ToArray(), 0);
            var f = chosen.to(probabilities.dtype).mean(new long[] { 0 });
            var pMean = probabilities.mean(new long[] { 0 });
            return (f * pMean).sum() * probabilities.shape[1];
        }

        /// <summary>The router z-loss of ST-MoE: mean over tokens of log(sum exp(logits))^2, with the log-sum-exp by hand.</summary>
        private static Tensor ReferenceZLoss(IEnumerable<ReferenceRouting> layers)
        {
            var logits = torch.cat(layers.Select(r => r.Logits).ToArray(), 0);
            var max = logits.amax(new long[] { -1 }, keepdim: true);
            var lse = (logits - max).exp().sum(-1, keepdim: true).log() + max;
            return (lse * lse).mean();
        }

        /// <summary>
        /// Logits of a GPT-2-bodied MoE model from elementary ops (the attention and dense MLP of
        /// <see cref="GeneratedGptNumericsTests.ReferenceLogits"/>, pre-norm, tied head, 4 heads), with the feed-forward of
        /// expert layers replaced by <see cref="ReferenceMoe"/>; returns each expert layer's routing too.
        /// </summary>
        private static (Tensor Logits, List<ReferenceRouting> Routing) ReferenceLogits(MoeModel m, IReadOnlyDictionary<string, Tensor> p, Tensor ids, Func<Tensor, Tensor> denseActivation)
        {
            long batch = ids.shape[0], time = ids.shape[1];
            var wte = p["transformer.wte.weight"];
            long hidden = wte.shape[1], headDim = hidden / 4;
            var x = wte.index_select(0, ids.flatten()).view(batch, time, hidden) + p["transformer.wpe.weight"].index_select(0, torch.arange(time, dtype: ScalarType.Int64));
            var future = torch.ones(time, time, ScalarType.Bool).triu(1);
            Tensor Norm(Tensor v, string name)
            {
                var centred = v - v.mean(new long[] { -1 }, keepdim: true);
                var variance = (centred * centred).mean(new long[] { -1 }, keepdim: true);
                return centred / (variance + 1e-5).sqrt() * p[name + ".weight"] + p[name + ".bias"];
            }
            Tensor Heads(Tensor v) => v.view(batch, time, 4, headDim).permute(0, 2, 1, 3);
            var routings = new List<ReferenceRouting>();
            for (int layer = 0; layer < m.Model.Card.DecoderLayers; layer++)
            {
                string h = $"transformer.h.{layer}.";
                var a = Norm(x, h + "ln_1");
                var qkv = a.matmul(p[h + "attn.c_attn.weight"]) + p[h + "attn.c_attn.bias"];
                var scores = Heads(qkv.narrow(-1, 0, hidden)).matmul(Heads(qkv.narrow(-1, hidden, hidden)).transpose(-2, -1)) / Math.Sqrt(headDim);
                var e = (scores.masked_fill(future, double.NegativeInfinity) - scores.masked_fill(future, double.NegativeInfinity).amax(new long[] { -1 }, keepdim: true)).exp();
                var y = (e / e.sum(-1, keepdim: true)).matmul(Heads(qkv.narrow(-1, 2 * hidden, hidden))).permute(0, 2, 1, 3).reshape(batch, time, hidden);
                x = x + y.matmul(p[h + "attn.c_proj.weight"]) + p[h + "attn.c_proj.bias"];
                var f = Norm(x, h + "ln_2");
                if (m.ExpertLayers.Contains(layer))
                {
                    var (moe, routing) = ReferenceMoe(m, p, f, layer);
                    routings.Add(routing);
                    x = x + moe;
                }
                else
                {
                    x = x + denseActivation(f.matmul(p[h + "mlp.c_fc.weight"]) + p[h + "mlp.c_fc.bias"]).matmul(p[h + "mlp.c_proj.weight"]) + p[h + "mlp.c_proj.bias"];
                }
            }
            return (Norm(x, "transformer.ln_f").matmul(wte.t()), routings);
        }

        // ------------------------------------------------------------------------------------------------------
        // Names and layer pattern
        // ------------------------------------------------------------------------------------------------------

        [Fact]
        public void Routers_and_experts_have_the_layouts_names_and_shapes()
        {
            using var scope = torch.NewDisposeScope();
            var gpt = Numerics.Parameters(TinyMoeGpt.CreateTorchSharp());
            Assert.Equal(new long[] { Experts, 32 }, gpt["transformer.h.0.mlp.gate.weight"].shape);          // nn.Linear [E, Hidden], as Mixtral's gate
            Assert.Equal(new long[] { 32, 64 }, gpt["transformer.h.1.mlp.experts.3.c_fc.weight"].shape);     // GPT-2's Conv1D [in, out]
            Assert.Equal(new long[] { 64, 32 }, gpt["transformer.h.1.mlp.experts.3.c_proj.weight"].shape);
            Assert.DoesNotContain(gpt.Keys, n => n.Contains(".experts.", StringComparison.Ordinal) && n.EndsWith(".bias", StringComparison.Ordinal));
            Assert.DoesNotContain("transformer.h.0.mlp.c_fc.weight", gpt.Keys);

            var mixtral = Numerics.Parameters(TinyMixtral.CreateTorchSharp());
            Assert.Equal(new long[] { Experts, 32 }, mixtral["model.layers.1.block_sparse_moe.gate.weight"].shape);
            Assert.Equal(new long[] { 48, 32 }, mixtral["model.layers.1.block_sparse_moe.experts.3.w1.weight"].shape); // gate_proj
            Assert.Equal(new long[] { 48, 32 }, mixtral["model.layers.1.block_sparse_moe.experts.3.w3.weight"].shape); // up_proj
            Assert.Equal(new long[] { 32, 48 }, mixtral["model.layers.1.block_sparse_moe.experts.3.w2.weight"].shape); // down_proj
        }

        [Fact]
        public void Switch_layers_alternate_dense_and_expert_as_declared()
        {
            using var scope = torch.NewDisposeScope();
            var m = Create(nameof(TinySwitchGpt));
            var names = Numerics.Parameters(m.Model).Keys.ToHashSet();
            foreach (int layer in new[] { 0, 2 })
            {
                Assert.Contains($"transformer.h.{layer}.mlp.c_fc.bias", names);
                Assert.DoesNotContain(names, n => n.StartsWith($"transformer.h.{layer}.mlp.gate", StringComparison.Ordinal));
            }
            foreach (int layer in new[] { 1, 3 })
            {
                Assert.Contains($"transformer.h.{layer}.mlp.gate.weight", names);
                Assert.Contains($"transformer.h.{layer}.mlp.experts.3.c_proj.weight", names);
                Assert.DoesNotContain($"transformer.h.{layer}.mlp.c_fc.weight", names);
            }
            using var noGrad = torch.no_grad();
            var output = m.Model.Forward(Numerics.RandomIds(2, 8, 50, 5));
            Assert.Equal(new[] { 1, 3 }, output.ExpertLoad.Keys);
        }

        // ------------------------------------------------------------------------------------------------------
        // Routing
        // ------------------------------------------------------------------------------------------------------

        [Fact]
        public void Router_probabilities_sum_to_one_top2_weights_are_renormalised_and_top1_keeps_the_raw_probability()
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(ScalarType.Float64);
            using var scope = torch.NewDisposeScope();
            using var generator = new Generator(7);
            var x = torch.randn(new long[] { 3, 5, 32 }, ScalarType.Float64, generator: generator);
            var gate = torch.randn(new long[] { Experts, 32 }, ScalarType.Float64, generator: generator) / Math.Sqrt(32);
            var tokens = x.reshape(-1, 32);
            var reference = Route(tokens, gate, 2, renormalize: true);

            // Top-E without renormalising returns every probability: a softmax, rows summing to one.
            var (all, allExperts, logits) = TransformerModel.Route(x, gate, Experts, renormalize: false, new ForwardState(), 0);
            Numerics.AssertClose(logits, reference.Logits, atol, rtol, "router logits x W^T", log);
            Numerics.AssertClose(all.gather(1, allExperts.argsort(1)), reference.Probabilities, atol, rtol, "router probabilities vs exp / sum", log);
            Numerics.AssertClose(all.sum(1), torch.ones(15, ScalarType.Float64), atol, rtol, "probabilities sum to one", log);

            // Mixtral: the two most probable experts, their probabilities divided by their sum.
            var (weights, experts, _) = TransformerModel.Route(x, gate, 2, renormalize: true, new ForwardState(), 0);
            Assert.True(Numerics.Identical(experts, reference.Probabilities.argsort(1, descending: true).narrow(1, 0, 2)), "top-2 experts are the two most probable, most probable first");
            Numerics.AssertClose(weights.sum(1), torch.ones(15, ScalarType.Float64), atol, rtol, "renormalised top-2 weights sum to one", log);
            Numerics.AssertClose(weights, reference.Probabilities.gather(1, experts) / reference.Probabilities.gather(1, experts).sum(1, keepdim: true), atol, rtol, "top-2 weights", log);

            // Switch: the raw probability of the chosen expert, below one, so the task loss reaches the router.
            var (top1, expert, _) = TransformerModel.Route(x, gate, 1, renormalize: false, new ForwardState(), 0);
            Numerics.AssertClose(top1, reference.Probabilities.amax(new long[] { 1 }, keepdim: true), atol, rtol, "top-1 weight = max probability", log);
            Assert.True(top1.max().item<double>() < 1 - 1e-3, "top-1 weights are raw probabilities, not renormalised to one");
            Assert.True(Numerics.Identical(expert.squeeze(1), reference.Probabilities.argmax(1)), "top-1 expert is the most probable");
        }

        [Theory]
        [InlineData(nameof(TinyMoeGpt), ScalarType.Float64)]
        [InlineData(nameof(TinyMoeGpt), ScalarType.Float32)]
        [InlineData(nameof(TinySwitchGpt), ScalarType.Float64)]
        [InlineData(nameof(TinySwitchGpt), ScalarType.Float32)]
        [InlineData(nameof(TinyMixtral), ScalarType.Float64)]
        [InlineData(nameof(TinyMixtral), ScalarType.Float32)]
        public void Sparse_dispatch_and_combine_equals_every_expert_on_every_token_masked_by_the_routing(string kind, ScalarType dtype)
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var m = Create(kind);
            var p = Randomize(m, dtype, 91);
            int layer = m.ExpertLayers[^1];
            using var generator = new Generator(92);
            var h = torch.randn(new long[] { 3, 11, 32 }, dtype, generator: generator).requires_grad_();
            var r = torch.randn(new long[] { 3, 11, 32 }, dtype, generator: generator);
            var hr = h.detach().clone().requires_grad_();

            var y = m.MixtureOfExperts(h, layer, new ForwardState());
            var (expected, routing) = ReferenceMoe(m, p, hr, layer);
            Numerics.AssertClose(y, expected, atol, rtol, $"{kind} {dtype} layer {layer} output", log);
            Assert.True(routing.Chosen.sum(1).eq(m.TopK).all().item<bool>(), "each token is routed to exactly TopK experts (no ties)");

            var mine = p.Where(kv => kv.Key.StartsWith(m.Prefix + layer + ".", StringComparison.Ordinal) && (kv.Key.Contains(".gate.") || kv.Key.Contains(".experts."))).ToList();
            Assert.Equal(1 + Experts * (kind == nameof(TinyMixtral) ? 3 : 2), mine.Count);
            var generated = Gradients(m.Model, (y * r).sum());
            var reference = Gradients(m.Model, (expected * r).sum());
            Numerics.AssertClose(h.grad, hr.grad, atol, rtol, $"{kind} {dtype} d(y.R)/dh", log);
            foreach (var (name, _) in mine)
                Numerics.AssertClose(generated[name], reference[name], atol, rtol, $"{kind} {dtype} d(y.R)/d{name}");
            log.WriteLine($"{kind} {dtype}: {mine.Count} router and expert gradients within tolerance");
        }

        /// <summary>
        /// Every parameter's gradient of <paramref name="loss"/> (backward, then the .grad tensors). An expert that received
        /// no token has no gradient: zeros, as the dense reference gives it (its outputs are weighted by exact zeros).
        /// </summary>
        private static Dictionary<string, Tensor> Gradients(nn.Module model, Tensor loss)
        {
            model.zero_grad();
            loss.backward();
            return model.named_parameters().ToDictionary(q => q.name, q => q.parameter.grad?.clone() ?? torch.zeros_like(q.parameter));
        }

        // ------------------------------------------------------------------------------------------------------
        // Auxiliary losses, by hand
        // ------------------------------------------------------------------------------------------------------

        /// <summary>
        /// Four tokens, two experts, top-1. Logits and their softmax (shifting a row changes no probability, only the z-loss):
        /// <code>
        ///   t0 [ln 3,     0]   p = (3/4, 1/4)   choice e0   logsumexp = ln 4
        ///   t1 [ln 3 + 1, 1]   p = (3/4, 1/4)   choice e0   logsumexp = ln 4 + 1
        ///   t2 [0,     ln 3]   p = (1/4, 3/4)   choice e1   logsumexp = ln 4
        ///   t3 [ln 3 - 1, -1]  p = (3/4, 1/4)   choice e0   logsumexp = ln 4 - 1
        /// </code>
        /// f = (3/4, 1/4) (shares of tokens), P = ((3/4 + 3/4 + 1/4 + 3/4) / 4, (1/4 + 1/4 + 3/4 + 1/4) / 4) = (5/8, 3/8);
        /// loss = E sum_e f_e P_e = 2 (3/4 x 5/8 + 1/4 x 3/8) = 2 x 18/32 = 9/8.
        /// z-loss = mean((ln 4)^2, (ln 4 + 1)^2, (ln 4)^2, (ln 4 - 1)^2) = (ln 4)^2 + 1/2.
        /// <para>
        /// Over all layers at once: the same tokens as two layers (t0, t1 | t2, t3) still give 9/8. Per layer, layer one
        /// has f = (1, 0), P = (3/4, 1/4), loss 2 x 3/4 = 3/2, and layer two f = (1/2, 1/2), loss 1: their mean would be 5/4.
        /// </para>
        /// <para>
        /// Top-2 of three experts, two tokens: t0 [ln 3, ln 2, 0] p = (1/2, 1/3, 1/6), choices (e0, e1);
        /// t1 [0, ln 2, ln 4] p = (1/7, 2/7, 4/7), choices (e2, e1). f[first] = (1/2, 0, 1/2), f[second] = (0, 1, 0);
        /// P = (9/28, 13/42, 31/84) = (27, 26, 31) / 84; loss = 3 ((27 + 31) / 2 + 26) / 84 = 3 x 55/84 = 55/28.
        /// </para>
        /// </summary>
        [Fact]
        public void Load_balancing_and_z_losses_equal_hand_computed_values()
        {
            using var scope = torch.NewDisposeScope();
            double ln3 = Math.Log(3), ln4 = Math.Log(4);
            var logits = torch.tensor(new[] { ln3, 0, ln3 + 1, 1, 0, ln3, ln3 - 1, -1 }, ScalarType.Float64).view(4, 2);
            var choices = torch.tensor(new long[] { 0, 0, 1, 0 }).view(4, 1);
            Assert.Equal(9.0 / 8, Routing.LoadBalancingLoss(logits, choices, 2).item<double>(), 14);
            Assert.Equal(ln4 * ln4 + 0.5, Routing.ZLoss(logits).item<double>(), 14);

            var top2 = torch.tensor(new[] { ln3, Math.Log(2), 0, 0, Math.Log(2), ln4 }, ScalarType.Float64).view(2, 3);
            var top2Choices = torch.tensor(new long[] { 0, 1, 2, 1 }).view(2, 2);
            Assert.Equal(55.0 / 28, Routing.LoadBalancingLoss(top2, top2Choices, 3).item<double>(), 14);

            // Two layers of two tokens each: one loss over all four tokens (9/8), not a mean of per-layer losses (5/4).
            var options = new RouterLossOptions(Experts: 2, Weight: 0.01, ZWeight: 0.001);
            var state = new ForwardState();
            state.AddRouting(logits.narrow(0, 0, 2), choices.narrow(0, 0, 2), options);
            state.AddRouting(logits.narrow(0, 2, 2), choices.narrow(0, 2, 2), options);
            Assert.Equal(0.01 * 9.0 / 8 + 0.001 * (ln4 * ln4 + 0.5), state.AuxiliaryLoss()!.item<double>(), 14);
            Assert.Null(new ForwardState().AuxiliaryLoss());
        }

        // ------------------------------------------------------------------------------------------------------
        // Whole models
        // ------------------------------------------------------------------------------------------------------

        [Theory]
        [InlineData(nameof(TinyMoeGpt), ScalarType.Float64)]
        [InlineData(nameof(TinyMoeGpt), ScalarType.Float32)]
        [InlineData(nameof(TinySwitchGpt), ScalarType.Float64)]
        [InlineData(nameof(TinySwitchGpt), ScalarType.Float32)]
        public void Model_logits_auxiliary_loss_loss_and_gradients_match_an_elementary_reference(string kind, ScalarType dtype)
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var m = Create(kind);
            var p = Randomize(m, dtype, 101);
            Func<Tensor, Tensor> dense = kind == nameof(TinySwitchGpt) ? v => v.clamp_min(0) : GeluTanh;
            var (auxWeight, zWeight) = kind == nameof(TinyMoeGpt) ? (0.01, 0.001) : (0.01, 0.0);
            var ids = Numerics.RandomIds(3, 16, 50, 102);
            var targets = Numerics.RandomIds(3, 16, 50, 103);

            var output = m.Model.Forward(ids);
            var (expectedLogits, routing) = ReferenceLogits(m, p, ids, dense);
            var expectedAuxiliary = auxWeight * ReferenceBalancingLoss(routing) + zWeight * ReferenceZLoss(routing);
            Numerics.AssertClose(output.Logits, expectedLogits, atol, rtol, $"{kind} {dtype} logits", log);
            Numerics.AssertClose(output.AuxiliaryLoss, expectedAuxiliary, atol, rtol, $"{kind} {dtype} auxiliary loss", log);

            var shortIds = ids.narrow(1, 0, 7);
            Numerics.AssertClose(m.Model.Forward(shortIds).Logits, ReferenceLogits(m, p, shortIds, dense).Logits, atol, rtol, $"{kind} {dtype} logits T=7", log);

            var loss = m.Model.Loss(ids, targets);
            var expectedLoss = GeneratedGptNumericsTests.ReferenceLoss(expectedLogits, targets) + expectedAuxiliary;
            Numerics.AssertClose(loss, expectedLoss, atol, rtol, $"{kind} {dtype} loss = cross-entropy + auxiliary", log);

            var generated = Gradients(m.Model, loss);
            var reference = Gradients(m.Model, expectedLoss);
            double worst = 0;
            foreach (var name in p.Keys)
                worst = Math.Max(worst, Numerics.AssertClose(generated[name], reference[name], atol, rtol, $"{kind} {dtype} dLoss/d{name}"));
            log.WriteLine($"{kind} {dtype} parameter gradients ({p.Count} tensors): max |diff| = {worst:E2}");
        }

        [Theory]
        [InlineData(nameof(TinyMoeGpt))]
        [InlineData(nameof(TinySwitchGpt))]
        public void Router_gets_gradient_from_the_task_loss_through_the_weights_and_from_the_auxiliary_loss(string kind)
        {
            using var scope = torch.NewDisposeScope();
            var m = Create(kind);
            var p = Randomize(m, ScalarType.Float64, 111);
            var ids = Numerics.RandomIds(2, 16, 50, 112);
            var targets = Numerics.RandomIds(2, 16, 50, 113);
            var gate = p[m.Gate(m.ExpertLayers[^1])];

            var output = m.Model.Forward(ids);
            var task = nn.functional.cross_entropy(output.Logits.view(-1, 50), targets.view(-1));
            var fromTask = torch.autograd.grad(new[] { task }, new[] { gate }, retain_graph: true)[0];
            var fromAuxiliary = torch.autograd.grad(new[] { output.AuxiliaryLoss! }, new[] { gate })[0];
            double taskNorm = fromTask.norm().item<double>(), auxiliaryNorm = fromAuxiliary.norm().item<double>();
            log.WriteLine($"{kind}: |dTask/dgate| = {taskNorm:E2}, |dAux/dgate| = {auxiliaryNorm:E2}");
            Assert.True(taskNorm > 1e-4, "the task loss reaches the router through the routing weights");
            Assert.True(auxiliaryNorm > 1e-6, "the load-balancing loss reaches the router through the mean probabilities");
        }

        [Fact]
        public void Expert_load_reports_tokens_per_expert_for_each_sparse_layer()
        {
            using var scope = torch.NewDisposeScope();
            var m = Create(nameof(TinyMoeGpt));
            var p = Randomize(m, ScalarType.Float64, 121);
            var ids = Numerics.RandomIds(3, 16, 50, 122);
            using var noGrad = torch.no_grad();
            var load = m.Model.Forward(ids).ExpertLoad;
            var (_, routing) = ReferenceLogits(m, p, ids, GeluTanh);
            Assert.Equal(new[] { 0, 1 }, load.Keys);
            for (int layer = 0; layer < 2; layer++)
            {
                var expected = routing[layer].Chosen.to(ScalarType.Int64).sum(dim: 0);
                Assert.Equal(ScalarType.Int64, load[layer].dtype);
                Assert.Equal(3 * 16 * 2, load[layer].sum().item<long>()); // every token counted once per choice
                Assert.True(Numerics.Identical(load[layer], expected),
                    $"layer {layer}: [{string.Join(", ", load[layer].data<long>().ToArray())}] vs [{string.Join(", ", expected.data<long>().ToArray())}]");
                log.WriteLine($"layer {layer}: tokens per expert [{string.Join(", ", load[layer].data<long>().ToArray())}]");
            }
        }

        [Fact]
        public void Expert_load_tensors_belong_to_the_callers_dispose_scope()
        {
            using var model = TinyMoeGpt.CreateTorchSharp();
            IReadOnlyDictionary<int, Tensor> load;
            using (var scope = torch.NewDisposeScope())
            using (torch.no_grad())
            {
                load = model.Forward(Numerics.RandomIds(1, 8, 50, 141)).ExpertLoad;
                Assert.All(load.Values, t => Assert.False(t.IsInvalid));
            }
            // As the logits: a training loop with one scope per step would otherwise keep a tensor per sparse layer and step.
            Assert.All(load.Values, t => Assert.True(t.IsInvalid, "the scope disposed the expert load"));
        }

        [Fact]
        public void Expert_load_shares_sum_to_one_per_layer_and_plot_as_PNGs()
        {
            var start = ExpertLoad.FromCounts(0, new Dictionary<int, long[]> { [0] = new long[] { 30, 10, 20, 40 }, [2] = new long[] { 25, 25, 25, 25 } });
            var end = ExpertLoad.FromCounts(100, new Dictionary<int, long[]> { [0] = new long[] { 26, 24, 25, 25 }, [2] = new long[] { 0, 50, 25, 25 } });
            Assert.Equal(new[] { 0.3, 0.1, 0.2, 0.4 }, start.Shares[0]);
            Assert.Equal(new[] { 0.0, 0.5, 0.25, 0.25 }, end.Shares[2]);
            Assert.Contains("Layer 1 routed no token", Assert.Throws<ArgumentException>(() => ExpertLoad.FromCounts(0, new Dictionary<int, long[]> { [1] = new long[4] })).Message);

            string directory = Path.Combine(Path.GetTempPath(), $"load-{Guid.NewGuid():N}");
            try
            {
                ExpertLoadPlot.SaveShares(Path.Combine(directory, "shares.png"), end, "test");
                ExpertLoadPlot.SaveOverTraining(Path.Combine(directory, "training.png"), new[] { start, end }, "test");
                foreach (var file in Directory.GetFiles(directory))
                    Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, File.ReadAllBytes(file).Take(4));
                Assert.Equal(2, Directory.GetFiles(directory).Length); // no temporary file left behind
                var threeExperts = ExpertLoad.FromCounts(50, new Dictionary<int, long[]> { [0] = new long[] { 1, 1, 1 }, [2] = new long[] { 1, 1, 1 } });
                Assert.Throws<ArgumentException>(() => ExpertLoadPlot.SaveOverTraining(Path.Combine(directory, "bad.png"), new[] { start, threeExperts }, "test"));
            }
            finally
            {
                Directory.Delete(directory, recursive: true);
            }
        }

        [Fact]
        public void The_trainer_minimises_the_task_loss_plus_the_auxiliary_loss()
        {
            using var scope = torch.NewDisposeScope();
            var m = Create(nameof(TinyMoeGpt));
            Randomize(m, ScalarType.Float32, 131);
            var tokens = Enumerable.Range(0, 400).Select(i => (i * 7 + i / 13) % 50).ToArray();
            var data = new TokenBatches(tokens, 50, validationFraction: 0.1);
            var options = new TrainingOptions { Steps = 1, BatchSize = 2, SequenceLength = 16, EvalEvery = 0, Seed = 132 };

            // The first batch the trainer draws, and its two losses before any step.
            var batch = new LanguageModelData(data).Stream(DataSplit.Train, options, options.Seed, null).Next();
            double crossEntropy, total;
            using (torch.no_grad())
            {
                var output = m.Model.Forward(batch.Ids);
                crossEntropy = nn.functional.cross_entropy(output.Logits.view(-1, 50), batch.Targets.view(-1)).item<float>();
                total = crossEntropy + output.AuxiliaryLoss!.item<float>();
            }
            using var trainer = new LanguageModelTrainer((CausalLanguageModel)m.Model, options);
            var report = trainer.Train(data);
            log.WriteLine($"step 0: reported {report.TrainLosses[0]:F6}, cross-entropy {crossEntropy:F6}, with the auxiliary loss {total:F6}");
            Assert.Equal(total, report.TrainLosses[0], 5);
            Assert.True(Math.Abs(report.TrainLosses[0] - crossEntropy) > 1e-3, "the reported loss includes the auxiliary loss");
        }

        /// <summary>
        /// Mixtral's and a GPT-2-bodied model's routers and experts round trip through safetensors under their Hugging Face
        /// names (block_sparse_moe.experts.{e}.w1/w2/w3; mlp.experts.{e}.c_fc/c_proj), every expert of every layer: a fresh
        /// model loaded from the file gives identical logits and auxiliary loss.
        /// </summary>
        [Theory]
        [InlineData(nameof(TinyMixtral), "model.layers.1.block_sparse_moe.experts.3.w3.weight")]
        [InlineData(nameof(TinyMoeGpt), "transformer.h.1.mlp.experts.3.c_proj.weight")]
        public void Routers_and_experts_round_trip_through_safetensors(string declaration, string lastExpertTensor)
        {
            using var scope = torch.NewDisposeScope();
            CausalLanguageModel Create() => declaration == nameof(TinyMixtral) ? TinyMixtral.CreateTorchSharp() : TinyMoeGpt.CreateTorchSharp();
            var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"{declaration}-{Guid.NewGuid():N}.safetensors");
            try
            {
                var model = Create();
                Numerics.Randomize(model, 31);
                model.SaveSafetensors(path);
                var header = ModelDsl.Checkpoints.SafetensorsFile.ReadHeader(path);
                Assert.Contains(lastExpertTensor, header.Tensors.Keys);
                Assert.All(model.named_parameters(), p => Assert.Contains(p.name, header.Tensors.Keys));
                var copy = Create();
                copy.LoadSafetensors(path);
                var ids = Numerics.RandomIds(2, 8, 50, 32);
                var (expected, actual) = (model.Forward(ids), copy.Forward(ids));
                Assert.True(Numerics.Identical(expected.Logits, actual.Logits));
                Assert.True(Numerics.Identical(expected.AuxiliaryLoss!, actual.AuxiliaryLoss!));
            }
            finally
            {
                System.IO.File.Delete(path);
            }
        }
    }
}