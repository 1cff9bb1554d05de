using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using ModelDsl;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>
    /// The generated GPT modules against independent references: libtorch's own nn.MultiheadAttention and
    /// nn.TransformerEncoderLayer (C++ frontend: explicit softmax attention, nn.Linear weights [out, in]), a forward
    /// pass written here from elementary ops (index_select, mean, exp, matmul, erf/tanh), autograd through that
    /// reference, and central finite differences.
    /// <para>
    /// Tolerances. Both sides evaluate the same real function with different operation orders (fused SDPA vs
    /// explicit softmax, addmm on [in, out] weights vs linear on [out, in], libtorch's layer_norm vs mean/var by
    /// hand), so they differ only by rounding: a few ulps times sums of at most ~200 terms, amplified a little by
    /// layer norms and softmax. The relative part of a bound is taken against the largest magnitude in the compared
    /// tensor (see <see cref="Numerics.AssertClose"/>). float64 (ulp 2.2e-16): measured differences are
    /// ~1e-15..6e-14, the bound is 1e-10 + 1e-10 max|ref|. float32 (ulp 1.2e-7): measured up to ~1e-6 relative to
    /// the tensor's scale, the bound is 1e-5 + 1e-5 max|ref|. Any real mistake (mask off by one, heads permuted, a
    /// bias or a transpose missing, a wrong epsilon or GELU variant) moves results by 1e-3 of their scale or more,
    /// far outside both bounds.
    /// </para>
    /// </summary>
    public sealed class GeneratedGptNumericsTests
    {
        private readonly ITestOutputHelper log;

        public GeneratedGptNumericsTests(ITestOutputHelper log) => this.log = log;

        internal static (double Atol, double Rtol) Tolerance(ScalarType dtype)
            => dtype == ScalarType.Float64 ? (1e-10, 1e-10) : (1e-5, 1e-5);

        // ------------------------------------------------------------------------------------------------------
        // 1. Attention vs libtorch's nn.MultiheadAttention
        // ------------------------------------------------------------------------------------------------------

        [Theory]
        [InlineData(ScalarType.Float64)]
        [InlineData(ScalarType.Float32)]
        public void Attention_matches_libtorch_MultiheadAttention_forward_and_gradients(ScalarType dtype)
        {
            var (atol, rtol) = Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var model = TinyGpt.CreateTorchSharp();
            model.to(dtype);
            Numerics.Randomize(model, 11);
            var attn = model.transformer.h[1].attn;
            const long batch = 3, time = 11, hidden = TinyGpt.TorchSharpModel.Hidden; // time < context: masks are sized by T

            var mha = nn.MultiheadAttention(hidden, TinyGpt.TorchSharpModel.Heads, dropout: 0.0, bias: true, add_bias_kv: false, add_zero_attn: false);
            mha.to(dtype);
            mha.eval();
            var reference = Numerics.Parameters(mha);
            Assert.Equal(new[] { "in_proj_bias", "in_proj_weight", "out_proj.bias", "out_proj.weight" },
                         reference.Keys.OrderBy(k => k, StringComparer.Ordinal));
            var map = new (Tensor Generated, string Reference, bool Transposed)[]
            {
                (attn.c_attn.weight, "in_proj_weight", true),   // [E, 3E] (q | k | v columns) vs [3E, E] rows
                (attn.c_attn.bias!, "in_proj_bias", false),
                (attn.c_proj.weight, "out_proj.weight", true),
                (attn.c_proj.bias!, "out_proj.bias", false),
            };
            CopyInto(reference, map);

            using var generator = new Generator(12);
            var x = torch.randn(new[] { batch, time, hidden }, dtype, generator: generator).requires_grad_();
            var r = torch.randn(new[] { batch, time, hidden }, dtype, generator: generator);
            var xr = x.detach().clone().requires_grad_();

            var y = model.SelfAttention(x, 1, new ForwardState());
            (y * r).sum().backward();

            // libtorch's C++ MultiheadAttention is sequence-first [T, B, E]; -inf above the diagonal is additive.
            var seqFirst = xr.transpose(0, 1);
            var yr = mha.call(seqFirst, seqFirst, seqFirst, null, false, Numerics.AdditiveCausalMask(time, dtype)).Item1.transpose(0, 1);
            (yr * r).sum().backward();

            Numerics.AssertClose(y, yr, atol, rtol, $"{dtype} attention output", log);
            Numerics.AssertClose(x.grad, xr.grad, atol, rtol, $"{dtype} d(out.R)/dx", log);
            AssertGradients(map, reference, atol, rtol, dtype);
        }

        // ------------------------------------------------------------------------------------------------------
        // 2. Whole decoder blocks vs libtorch modules
        // ------------------------------------------------------------------------------------------------------

        /// <summary>
        /// libtorch's C++ TransformerEncoderLayer (the one TorchSharp 0.107 wraps) is post-norm with LayerNorm eps 1e-5
        /// and has no norm_first: exactly the generated post-norm block with exact GELU and eps 1e-5.
        /// </summary>
        [Theory]
        [InlineData(ScalarType.Float64)]
        [InlineData(ScalarType.Float32)]
        public void PostNorm_block_matches_libtorch_TransformerEncoderLayer_forward_and_gradients(ScalarType dtype)
        {
            var (atol, rtol) = Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var model = TinyPostNormGpt.CreateTorchSharp();
            model.to(dtype);
            Numerics.Randomize(model, 21);
            model.eval();
            var block = model.transformer.h[0];
            const long hidden = TinyPostNormGpt.TorchSharpModel.Hidden;

            var layer = nn.TransformerEncoderLayer(hidden, TinyPostNormGpt.TorchSharpModel.Heads, TinyPostNormGpt.TorchSharpModel.Inner,
                                                   dropout: 0.0, activation: nn.Activations.GELU);
            layer.to(dtype);
            layer.eval();
            var reference = Numerics.Parameters(layer);
            var map = new (Tensor Generated, string Reference, bool Transposed)[]
            {
                (block.attn.c_attn.weight, "self_attn.in_proj_weight", true),
                (block.attn.c_attn.bias!, "self_attn.in_proj_bias", false),
                (block.attn.c_proj.weight, "self_attn.out_proj.weight", true),
                (block.attn.c_proj.bias!, "self_attn.out_proj.bias", false),
                (block.ln_1.weight!, "norm1.weight", false),
                (block.ln_1.bias!, "norm1.bias", false),
                (block.mlp.c_fc.weight, "linear1.weight", true),
                (block.mlp.c_fc.bias!, "linear1.bias", false),
                (block.mlp.c_proj.weight, "linear2.weight", true),
                (block.mlp.c_proj.bias!, "linear2.bias", false),
                (block.ln_2.weight!, "norm2.weight", false),
                (block.ln_2.bias!, "norm2.bias", false),
            };
            Assert.Equal(map.Select(m => m.Reference).OrderBy(k => k, StringComparer.Ordinal),
                         reference.Keys.OrderBy(k => k, StringComparer.Ordinal));
            CopyInto(reference, map);

            CompareBlocks(x => model.DecoderLayer(x, 0, new ForwardState()),
                          (x, mask) => layer.call(x.transpose(0, 1), mask).transpose(0, 1),
                          map, reference, hidden, dtype, seed: 22, "post-norm block vs TransformerEncoderLayer");
        }

        /// <summary>
        /// Pre-norm blocks (GPT-2's) against the same computation composed from libtorch's nn.LayerNorm,
        /// nn.MultiheadAttention, nn.Linear and its functional GELU-tanh / ReLU: different attention and linear
        /// kernels, the same mathematics. Covers GELU-tanh with eps 1e-5 and ReLU with eps 1e-6.
        /// </summary>
        [Theory]
        [InlineData(nameof(TinyGpt), ScalarType.Float64)]
        [InlineData(nameof(TinyGpt), ScalarType.Float32)]
        [InlineData(nameof(TinyUntiedReluGpt), ScalarType.Float64)]
        [InlineData(nameof(TinyUntiedReluGpt), ScalarType.Float32)]
        public void PreNorm_block_matches_composition_of_libtorch_modules(string kind, ScalarType dtype)
        {
            using var scope = torch.NewDisposeScope();
            var (model, arch) = Create(kind);
            model.to(dtype);
            Numerics.Randomize(model, 31);
            model.eval();
            Func<Tensor, Tensor> generated;
            if (model is TinyGpt.TorchSharpModel gpt)
            {
                generated = x => gpt.DecoderLayer(x, 1, new ForwardState());
            }
            else
            {
                var relu = (TinyUntiedReluGpt.TorchSharpModel)model;
                generated = x => relu.DecoderLayer(x, 1, new ForwardState());
            }
            var p = Numerics.Parameters(model);
            string h = "transformer.h.1.";
            long hidden = p[h + "ln_1.weight"].shape[0], inner = p[h + "mlp.c_fc.bias"].shape[0];

            var ln1 = nn.LayerNorm(hidden, arch.Epsilon);
            var mha = nn.MultiheadAttention(hidden, arch.Heads, dropout: 0.0);
            var ln2 = nn.LayerNorm(hidden, arch.Epsilon);
            var linear1 = nn.Linear(hidden, inner);
            var linear2 = nn.Linear(inner, hidden);
            var reference = new Dictionary<string, Tensor>();
            foreach (var (prefix, module) in new (string, nn.Module)[] { ("ln1.", ln1), ("mha.", mha), ("ln2.", ln2), ("linear1.", linear1), ("linear2.", linear2) })
            {
                module.to(dtype);
                module.eval();
                foreach (var (name, value) in Numerics.Parameters(module)) reference[prefix + name] = value;
            }
            var map = new (Tensor Generated, string Reference, bool Transposed)[]
            {
                (p[h + "ln_1.weight"], "ln1.weight", false),
                (p[h + "ln_1.bias"], "ln1.bias", false),
                (p[h + "attn.c_attn.weight"], "mha.in_proj_weight", true),
                (p[h + "attn.c_attn.bias"], "mha.in_proj_bias", false),
                (p[h + "attn.c_proj.weight"], "mha.out_proj.weight", true),
                (p[h + "attn.c_proj.bias"], "mha.out_proj.bias", false),
                (p[h + "ln_2.weight"], "ln2.weight", false),
                (p[h + "ln_2.bias"], "ln2.bias", false),
                (p[h + "mlp.c_fc.weight"], "linear1.weight", true),
                (p[h + "mlp.c_fc.bias"], "linear1.bias", false),
                (p[h + "mlp.c_proj.weight"], "linear2.weight", true),
                (p[h + "mlp.c_proj.bias"], "linear2.bias", false),
            };
            Assert.Equal(map.Select(m => m.Reference).OrderBy(k => k, StringComparer.Ordinal),
                         reference.Keys.OrderBy(k => k, StringComparer.Ordinal));
            CopyInto(reference, map);

            Tensor Activation(Tensor v) => arch.Activation switch
            {
                ModelDsl.Activation.GeluTanh => nn.functional.gelu(v, global::TorchSharp.Modules.GELU.Approximate.tanh),
                ModelDsl.Activation.Relu => nn.functional.relu(v),
                _ => throw new NotSupportedException(arch.Activation.ToString()),
            };
            Tensor Reference(Tensor x, Tensor mask)
            {
                var a = ln1.call(x).transpose(0, 1);
                x = x + mha.call(a, a, a, null, false, mask).Item1.transpose(0, 1);
                return x + linear2.call(Activation(linear1.call(ln2.call(x))));
            }

            CompareBlocks(generated, Reference, map, reference, hidden, dtype, seed: 32, $"{kind} pre-norm block vs libtorch modules");
        }

        // ------------------------------------------------------------------------------------------------------
        // 3. Whole models vs a forward pass written from elementary ops
        // ------------------------------------------------------------------------------------------------------

        /// <summary>What each declaration in TestModels.cs says, restated here (not read from the generated code).</summary>
        internal sealed record Architecture(int Layers, int Heads, double Epsilon, bool PreNorm, Activation Activation, bool Tied);

        internal static (CausalLanguageModel Model, Architecture Arch) Create(string kind) => kind switch
        {
            nameof(TinyGpt) => (TinyGpt.CreateTorchSharp(), new Architecture(2, 4, 1e-5, true, Activation.GeluTanh, true)),
            nameof(TinyPostNormGpt) => (TinyPostNormGpt.CreateTorchSharp(), new Architecture(2, 4, 1e-5, false, Activation.Gelu, true)),
            nameof(TinyUntiedReluGpt) => (TinyUntiedReluGpt.CreateTorchSharp(), new Architecture(2, 4, 1e-6, true, Activation.Relu, false)),
            nameof(TinyDropoutGpt) => (TinyDropoutGpt.CreateTorchSharp(), new Architecture(2, 4, 1e-5, true, Activation.Relu, true)),
            _ => throw new ArgumentException(kind, nameof(kind)),
        };

        /// <summary>
        /// Logits [B, T, V] from elementary ops only: index_select embeddings, layer norm as (x - mean) / sqrt(var + eps),
        /// softmax as exp(s - max) / sum with a -inf causal mask, GELU from its tanh or erf formula, and x @ wte^T.
        /// Built from the model's own parameter tensors, so autograd through it gives reference gradients.
        /// </summary>
        internal static Tensor ReferenceLogits(IReadOnlyDictionary<string, Tensor> p, Architecture a, Tensor ids)
        {
            long batch = ids.shape[0], time = ids.shape[1];
            var wte = p["transformer.wte.weight"];
            long hidden = wte.shape[1], headDim = hidden / a.Heads;
            var positions = torch.arange(time, dtype: ScalarType.Int64);
            var x = wte.index_select(0, ids.flatten()).view(batch, time, hidden) + p["transformer.wpe.weight"].index_select(0, positions);
            var future = torch.ones(time, time, ScalarType.Bool).triu(1); // true above the diagonal: key after query

            Tensor Norm(Tensor v, string name)
            {
                var centred = v - v.mean(new long[] { -1 }, keepdim: true);
                var variance = (centred * centred).mean(new long[] { -1 }, keepdim: true);
                return centred / (variance + a.Epsilon).sqrt() * p[name + ".weight"] + p[name + ".bias"];
            }
            Tensor Heads(Tensor v) => v.view(batch, time, a.Heads, headDim).permute(0, 2, 1, 3); // [B, H, T, D]
            Tensor Activation(Tensor v) => a.Activation switch
            {
                ModelDsl.Activation.GeluTanh => 0.5 * v * (1 + (Math.Sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)).tanh()),
                ModelDsl.Activation.Gelu => 0.5 * v * (1 + (v / Math.Sqrt(2)).erf()),
                ModelDsl.Activation.Relu => v.clamp_min(0),
                _ => throw new NotSupportedException(a.Activation.ToString()),
            };
            for (int layer = 0; layer < a.Layers; layer++)
            {
                string h = $"transformer.h.{layer}.";
                Tensor Attention(Tensor v)
                {
                    var qkv = v.matmul(p[h + "attn.c_attn.weight"]) + p[h + "attn.c_attn.bias"];
                    var q = Heads(qkv.narrow(-1, 0, hidden));
                    var k = Heads(qkv.narrow(-1, hidden, hidden));
                    var values = Heads(qkv.narrow(-1, 2 * hidden, hidden));
                    var scores = q.matmul(k.transpose(-2, -1)) / Math.Sqrt(headDim);
                    scores = scores.masked_fill(future, double.NegativeInfinity);
                    var e = (scores - scores.amax(new long[] { -1 }, keepdim: true)).exp();
                    var weights = e / e.sum(-1, keepdim: true);
                    var y = weights.matmul(values).permute(0, 2, 1, 3).reshape(batch, time, hidden);
                    return y.matmul(p[h + "attn.c_proj.weight"]) + p[h + "attn.c_proj.bias"];
                }
                Tensor Mlp(Tensor v)
                    => Activation(v.matmul(p[h + "mlp.c_fc.weight"]) + p[h + "mlp.c_fc.bias"]).matmul(p[h + "mlp.c_proj.weight"]) + p[h + "mlp.c_proj.bias"];

                if (a.PreNorm)
                {
                    x = x + Attention(Norm(x, h + "ln_1"));
                    x = x + Mlp(Norm(x, h + "ln_2"));
                }
                else
                {
                    x = Norm(x + Attention(x), h + "ln_1");
                    x = Norm(x + Mlp(x), h + "ln_2");
                }
            }
            if (a.PreNorm) x = Norm(x, "transformer.ln_f");
            return x.matmul((a.Tied ? wte : p["lm_head.weight"]).t());
        }

        /// <summary>Mean negative log-likelihood by hand (log-sum-exp), skipping targets of -100.</summary>
        internal static Tensor ReferenceLoss(Tensor logits, Tensor targets)
        {
            var logProbs = logits - logits.logsumexp(-1, keepdim: true);
            var valid = targets.ne(-100);
            var safe = torch.where(valid, targets, torch.zeros_like(targets));
            var nll = -logProbs.gather(-1, safe.unsqueeze(-1)).squeeze(-1);
            return (nll * valid.to(nll.dtype)).sum() / valid.sum().to(nll.dtype);
        }

        [Theory]
        [InlineData(nameof(TinyGpt), ScalarType.Float64)]
        [InlineData(nameof(TinyGpt), ScalarType.Float32)]
        [InlineData(nameof(TinyPostNormGpt), ScalarType.Float64)]
        [InlineData(nameof(TinyPostNormGpt), ScalarType.Float32)]
        [InlineData(nameof(TinyUntiedReluGpt), ScalarType.Float64)]
        [InlineData(nameof(TinyUntiedReluGpt), ScalarType.Float32)]
        [InlineData(nameof(TinyDropoutGpt), ScalarType.Float64)] // in eval mode dropout is the identity
        public void Model_logits_loss_and_gradients_match_handwritten_reference(string kind, ScalarType dtype)
        {
            var (atol, rtol) = Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var (model, arch) = Create(kind);
            model.to(dtype);
            Numerics.Randomize(model, 41);
            model.eval();
            var p = Numerics.Parameters(model);
            var ids = Numerics.RandomIds(3, model.Card.Context, model.Card.Vocab, 42);
            var targets = Numerics.RandomIds(3, model.Card.Context, model.Card.Vocab, 43);

            var logits = model.Forward(ids, null).Logits;
            var expectedLogits = ReferenceLogits(p, arch, ids);
            Numerics.AssertClose(logits, expectedLogits, atol, rtol, $"{kind} {dtype} logits", log);

            // A shorter sequence (T < context): masks and positions must follow T, not the context.
            var shortIds = ids.narrow(1, 0, 7);
            Numerics.AssertClose(model.Forward(shortIds, null).Logits, ReferenceLogits(p, arch, shortIds), atol, rtol, $"{kind} {dtype} logits T=7", log);

            model.zero_grad();
            var loss = model.Loss(ids, targets);
            loss.backward();
            var grads = model.named_parameters().ToDictionary(q => q.Item1, q => q.Item2.grad!.clone());
            model.zero_grad();
            var expectedLoss = ReferenceLoss(ReferenceLogits(p, arch, ids), targets);
            expectedLoss.backward();

            Numerics.AssertClose(loss, expectedLoss, atol, rtol, $"{kind} {dtype} loss", log);
            double worst = 0;
            foreach (var (name, parameter) in model.named_parameters())
                worst = Math.Max(worst, Numerics.AssertClose(grads[name], parameter.grad, atol, rtol, $"{kind} {dtype} dLoss/d{name}"));
            log.WriteLine($"{kind} {dtype} parameter gradients ({grads.Count} tensors): max |diff| = {worst:E2}");
        }

        [Theory]
        [InlineData(ScalarType.Float64)]
        [InlineData(ScalarType.Float32)]
        public void Loss_equals_cross_entropy_of_the_logits_and_skips_ignored_targets(ScalarType dtype)
        {
            var (atol, rtol) = Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var model = TinyGpt.CreateTorchSharp();
            model.to(dtype);
            Numerics.Randomize(model, 51);
            model.eval();
            var ids = Numerics.RandomIds(2, 16, 50, 52);
            var targets = Numerics.RandomIds(2, 16, 50, 53);
            var logits = model.Forward(ids, null).Logits;

            var loss = model.Loss(ids, targets);
            Numerics.AssertClose(loss, nn.functional.cross_entropy(logits.view(-1, 50), targets.view(-1)), atol, rtol, $"{dtype} Loss vs cross_entropy", log);
            Numerics.AssertClose(loss, ReferenceLoss(logits, targets), atol, rtol, $"{dtype} Loss vs log-sum-exp by hand", log);

            // -100 marks padding: those positions leave both the sum and the count.
            var masked = targets.clone();
            masked[0, TensorIndex.Slice(10, null)] = torch.tensor(-100L);
            var maskedLoss = model.Loss(ids, masked);
            Numerics.AssertClose(maskedLoss, ReferenceLoss(logits, masked), atol, rtol, $"{dtype} Loss with -100 targets", log);
            Assert.True(Math.Abs(maskedLoss.to(ScalarType.Float64).item<double>() - loss.to(ScalarType.Float64).item<double>()) > 1e-3,
                "masking targets should change the loss");
        }

        [Fact]
        public void Dropout_is_active_in_training_mode_and_off_in_eval_mode()
        {
            using var scope = torch.NewDisposeScope();
            var model = TinyDropoutGpt.CreateTorchSharp();
            model.to(ScalarType.Float64);
            Numerics.Randomize(model, 61);
            var ids = Numerics.RandomIds(2, 16, 50, 62);
            model.train();
            double trainingDifference = (model.Forward(ids, null).Logits - model.Forward(ids, null).Logits).abs().max().item<double>();
            model.eval();
            double evalDifference = (model.Forward(ids, null).Logits - model.Forward(ids, null).Logits).abs().max().item<double>();
            log.WriteLine($"two training-mode forwards differ by {trainingDifference:E2}; two eval-mode forwards by {evalDifference:E2}");
            Assert.True(trainingDifference > 1e-3, "dropout 0.1 should change the logits in training mode");
            Assert.Equal(0.0, evalDifference);
        }

        // ------------------------------------------------------------------------------------------------------
        // 4. Finite differences
        // ------------------------------------------------------------------------------------------------------

        /// <summary>
        /// Autograd's dLoss/dθ against central differences (L(θ + ε) - L(θ - ε)) / 2ε with ε = 1e-6 in float64, for
        /// 5 seeded entries each of 8 parameter tensors. Truncation error is O(ε² L''') ≈ 1e-12; rounding error is
        /// about ulp(L) / ε ≈ 1e-9. Bound: 1e-5 |g| + 1e-8.
        /// </summary>
        [Fact]
        public void Loss_gradient_matches_central_finite_differences()
        {
            using var scope = torch.NewDisposeScope();
            var model = TinyGpt.CreateTorchSharp();
            model.to(ScalarType.Float64);
            Numerics.Randomize(model, 71);
            model.eval();
            var ids = Numerics.RandomIds(2, 16, 50, 72);
            var targets = Numerics.RandomIds(2, 16, 50, 73);
            var p = Numerics.Parameters(model);
            model.zero_grad();
            model.Loss(ids, targets).backward();

            var names = new[]
            {
                "transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight", "transformer.h.0.attn.c_attn.weight",
                "transformer.h.1.attn.c_proj.bias", "transformer.h.1.mlp.c_fc.bias", "transformer.h.1.mlp.c_proj.weight", "transformer.ln_f.bias",
            };
            double Loss()
            {
                using var inner = torch.NewDisposeScope();
                using var noGrad = torch.no_grad();
                return model.Loss(ids, targets).item<double>();
            }
            var (worstAbsolute, worstRelative) = Numerics.AssertFiniteDifferences(p, names, samples: 5, new Random(74), Loss);
            log.WriteLine($"finite differences (40 entries): max |diff| = {worstAbsolute:E2}, max relative = {worstRelative:E2}");
        }

        // ------------------------------------------------------------------------------------------------------

        private static void CopyInto(IReadOnlyDictionary<string, Tensor> reference, (Tensor Generated, string Reference, bool Transposed)[] map)
        {
            using var noGrad = torch.no_grad();
            foreach (var (generated, name, transposed) in map)
                reference[name].copy_(transposed ? generated.t() : generated);
        }

        private void AssertGradients((Tensor Generated, string Reference, bool Transposed)[] map, IReadOnlyDictionary<string, Tensor> reference,
                                     double atol, double rtol, ScalarType dtype)
        {
            foreach (var (generated, name, transposed) in map)
            {
                var expected = reference[name].grad;
                Assert.True(expected is not null, $"no gradient reached the reference's {name}");
                Numerics.AssertClose(generated.grad, transposed ? expected!.t() : expected, atol, rtol, $"{dtype} dL/d{name}", log);
            }
        }

        /// <summary>Forward and every gradient (input and weights) of a random projection sum(out * R).</summary>
        private void CompareBlocks(Func<Tensor, Tensor> generated, Func<Tensor, Tensor, Tensor> reference,
                                   (Tensor Generated, string Reference, bool Transposed)[] map, IReadOnlyDictionary<string, Tensor> referenceParameters,
                                   long hidden, ScalarType dtype, ulong seed, string what)
        {
            var (atol, rtol) = Tolerance(dtype);
            const long batch = 2, time = 13;
            using var generator = new Generator(seed);
            var x = torch.randn(new[] { batch, time, hidden }, dtype, generator: generator).requires_grad_();
            var r = torch.randn(new[] { batch, time, hidden }, dtype, generator: generator);
            var xr = x.detach().clone().requires_grad_();

            var y = generated(x);
            (y * r).sum().backward();
            var yr = reference(xr, Numerics.AdditiveCausalMask(time, dtype)); // autograd on: libtorch's slow, plain path
            (yr * r).sum().backward();

            Numerics.AssertClose(y, yr, atol, rtol, $"{dtype} {what}: output", log);
            Numerics.AssertClose(x.grad, xr.grad, atol, rtol, $"{dtype} {what}: d(out.R)/dx", log);
            AssertGradients(map, referenceParameters, atol, rtol, dtype);
        }
    }
}
