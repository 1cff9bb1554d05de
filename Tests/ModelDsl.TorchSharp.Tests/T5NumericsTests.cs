using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>
    /// The generated T5 code (TinyT5: d_kv 16 so Heads x HeadDim = 64 is not Hidden = 32, gated GELU-tanh, untied head;
    /// TinyTiedT5: ReLU, tied head rescaled by Hidden^-0.5) against independent references: a teacher-forced forward
    /// pass written here from elementary ops with the model's own parameter tensors (autograd through it gives the
    /// reference gradients), libtorch's nn.MultiheadAttention and nn.TransformerDecoderLayer with copied weights, and
    /// central finite differences. T5 does not scale its attention scores by 1/sqrt(d_kv); the libtorch modules do,
    /// so their queries are multiplied by sqrt(d_kv) to compare. Tolerances as in <see cref="GeneratedGptNumericsTests"/>:
    /// float64 1e-10 + 1e-10 max|ref|, float32 1e-5 + 1e-5 max|ref|.
    /// </summary>
    public sealed class T5NumericsTests
    {
        private readonly ITestOutputHelper log;

        public T5NumericsTests(ITestOutputHelper log) => this.log = log;

        /// <summary>What each declaration in TestModels.cs says, restated here (not read from the generated code).</summary>
        internal sealed record Architecture(int EncoderLayers, int DecoderLayers, int Heads, int HeadDim, bool Gated, bool Tied)
        {
            public const int Buckets = 8, MaxDistance = 16;
            public const double Epsilon = 1e-6;
        }

        internal static (SequenceToSequenceModel Model, Architecture Arch) Create(string kind) => kind switch
        {
            nameof(TinyT5) => (TinyT5.CreateTorchSharp(), new Architecture(2, 2, 4, 16, Gated: true, Tied: false)),
            nameof(TinyTiedT5) => (TinyTiedT5.CreateTorchSharp(), new Architecture(1, 2, 4, 8, Gated: false, Tied: true)),
            _ => throw new ArgumentException(kind, nameof(kind)),
        };

        /// <summary>
        /// <see cref="Numerics.Randomize"/>, with T5's embedding "shared" drawn like the other embeddings (N(0, 0.5)):
        /// Randomize recognises embeddings by GPT-2's, BERT's and Llama's names.
        /// </summary>
        internal static void Randomize(nn.Module model, ulong seed)
        {
            Numerics.Randomize(model, seed);
            using var generator = new Generator(seed + 1);
            using var noGrad = torch.no_grad();
            model.get_parameter("shared.weight")!.normal_(0.0, 0.5, generator);
        }

        /// <summary>Source ids [3, 13] whose rows hold 13, 8 and 4 real tokens (right padding, pad id 0) and their mask.</summary>
        internal static (Tensor Source, Tensor Mask) PaddedSource(ulong seed, long vocab = 50)
        {
            var lengths = new long[] { 13, 8, 4 };
            var mask = torch.arange(13).unsqueeze(0).lt(torch.tensor(lengths).unsqueeze(1));
            var source = Numerics.RandomIds(3, 13, vocab, seed).masked_fill(mask.logical_not(), 0);
            return (source, mask);
        }

        // ------------------------------------------------------------------------------------------------------
        // 1. Whole models vs a forward pass written from elementary ops
        // ------------------------------------------------------------------------------------------------------

        /// <summary>
        /// Teacher-forced logits [B, T, V] from elementary ops: index_select embeddings, RMS norm as
        /// x / sqrt(mean(x^2) + eps) * w, unscaled attention scores q k^T plus the relative position bias (buckets from
        /// Hugging Face's formula, <see cref="T5RelativePositionBucketTests.HuggingFaceBuckets"/>), -inf where a key is
        /// hidden (padding in the encoder and the cross-attention, the future in the decoder), softmax as
        /// exp(s - max) / sum, the feed-forward from its formula (GELU-tanh written out), the final norms and the head.
        /// </summary>
        internal static Tensor ReferenceLogits(IReadOnlyDictionary<string, Tensor> p, Architecture a, Tensor source, Tensor sourceMask, Tensor decoderInput)
        {
            long batch = source.shape[0], sourceTime = source.shape[1], time = decoderInput.shape[1];
            var shared = p["shared.weight"];
            long hidden = shared.shape[1];

            Tensor Rms(Tensor v, string name) => v / ((v * v).mean(new long[] { -1 }, keepdim: true) + Architecture.Epsilon).sqrt() * p[name + ".weight"];
            Tensor Embed(Tensor ids) => shared.index_select(0, ids.flatten()).view(ids.shape[0], ids.shape[1], hidden);
            Tensor Heads(Tensor v) => v.view(batch, v.shape[1], a.Heads, a.HeadDim).permute(0, 2, 1, 3);            // [B, H, T, D]
            Tensor Bias(string table, long queries, long keys, bool bidirectional)
            {
                var relative = torch.arange(keys, dtype: ScalarType.Int64).unsqueeze(0) - torch.arange(queries, dtype: ScalarType.Int64).unsqueeze(1);
                var bucket = T5RelativePositionBucketTests.HuggingFaceBuckets(relative, bidirectional, Architecture.Buckets, Architecture.MaxDistance);
                return p[table].index_select(0, bucket.flatten()).view(queries, keys, a.Heads).permute(2, 0, 1);   // [H, Tq, Tk]
            }
            Tensor Attention(Tensor queries, Tensor memory, string at, Tensor hidden_, Tensor? bias)
            {
                var q = Heads(queries.matmul(p[at + ".q.weight"].t()));
                var k = Heads(memory.matmul(p[at + ".k.weight"].t()));
                var v = Heads(memory.matmul(p[at + ".v.weight"].t()));
                var scores = q.matmul(k.transpose(-2, -1));                                                          // no 1/sqrt(d)
                if (bias is not null) scores = scores + bias;
                scores = scores.masked_fill(hidden_, double.NegativeInfinity);
                var e = (scores - scores.amax(new long[] { -1 }, keepdim: true)).exp();
                var y = (e / e.sum(-1, keepdim: true)).matmul(v).permute(0, 2, 1, 3).reshape(batch, queries.shape[1], a.Heads * a.HeadDim);
                return y.matmul(p[at + ".o.weight"].t());
            }
            Tensor FeedForward(Tensor h, string at)
            {
                if (!a.Gated) return h.matmul(p[at + ".wi.weight"].t()).clamp_min(0).matmul(p[at + ".wo.weight"].t());
                var gate = h.matmul(p[at + ".wi_0.weight"].t());
                var gelu = 0.5 * gate * (1 + (Math.Sqrt(2 / Math.PI) * (gate + 0.044715 * gate * gate * gate)).tanh());
                return (gelu * h.matmul(p[at + ".wi_1.weight"].t())).matmul(p[at + ".wo.weight"].t());
            }

            // Encoder: bidirectional, the source padding hidden from every query.
            var padding = sourceMask.logical_not().view(batch, 1, 1, sourceTime);                                    // [B, 1, 1, S]
            var encoderBias = Bias("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", sourceTime, sourceTime, true);
            var x = Embed(source);
            for (int layer = 0; layer < a.EncoderLayers; layer++)
            {
                string l = $"encoder.block.{layer}.layer.";
                x = x + Attention(Rms(x, l + "0.layer_norm"), Rms(x, l + "0.layer_norm"), l + "0.SelfAttention", padding, encoderBias);
                x = x + FeedForward(Rms(x, l + "1.layer_norm"), l + "1.DenseReluDense");
            }
            var encoded = Rms(x, "encoder.final_layer_norm");

            // Decoder: causal self-attention with its own bias table, cross-attention over the real source tokens.
            var future = torch.ones(time, time, ScalarType.Bool).triu(1);
            var decoderBias = Bias("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", time, time, false);
            var y = Embed(decoderInput);
            for (int layer = 0; layer < a.DecoderLayers; layer++)
            {
                string l = $"decoder.block.{layer}.layer.";
                var h = Rms(y, l + "0.layer_norm");
                y = y + Attention(h, h, l + "0.SelfAttention", future, decoderBias);
                y = y + Attention(Rms(y, l + "1.layer_norm"), encoded, l + "1.EncDecAttention", padding, null);
                y = y + FeedForward(Rms(y, l + "2.layer_norm"), l + "2.DenseReluDense");
            }
            y = Rms(y, "decoder.final_layer_norm");
            return a.Tied ? (y * Math.Pow(hidden, -0.5)).matmul(shared.t()) : y.matmul(p["lm_head.weight"].t());
        }

        [Theory]
        [InlineData(nameof(TinyT5), ScalarType.Float64)]
        [InlineData(nameof(TinyT5), ScalarType.Float32)]
        [InlineData(nameof(TinyTiedT5), ScalarType.Float64)]
        [InlineData(nameof(TinyTiedT5), ScalarType.Float32)]
        public void Teacher_forced_logits_loss_and_every_gradient_match_an_elementary_reference(string kind, ScalarType dtype)
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var (model, arch) = Create(kind);
            model.to(dtype);
            Randomize(model, 301);
            model.eval();
            var p = Numerics.Parameters(model);
            var (source, mask) = PaddedSource(302);
            var decoderInput = Numerics.RandomIds(3, 16, 50, 303);                                                 // the whole context
            var targets = Numerics.RandomIds(3, 16, 50, 304);
            targets[2, TensorIndex.Slice(11, null)] = torch.tensor(-100L);                                          // a shorter target

            var logits = model.Forward(source, decoderInput, mask).Logits;
            Numerics.AssertClose(logits, ReferenceLogits(p, arch, source, mask, decoderInput), atol, rtol, $"{kind} {dtype} logits", log);
            var shortInput = decoderInput.narrow(1, 0, 5);
            Numerics.AssertClose(model.Forward(source, shortInput, mask).Logits, ReferenceLogits(p, arch, source, mask, shortInput),
                atol, rtol, $"{kind} {dtype} logits T=5", log);

            model.zero_grad();
            var loss = model.Loss(source, decoderInput, targets, mask);
            loss.backward();
            var grads = model.named_parameters().ToDictionary(q => q.name, q => q.parameter.grad!.clone());
            model.zero_grad();
            var expectedLoss = GeneratedGptNumericsTests.ReferenceLoss(ReferenceLogits(p, arch, source, mask, decoderInput), targets);
            expectedLoss.backward();

            Numerics.AssertClose(loss, expectedLoss, atol, rtol, $"{kind} {dtype} loss", log);
            double worst = 0;
            foreach (var (name, parameter) in model.named_parameters())
                worst = Math.Max(worst, Numerics.AssertClose(grads[name], parameter.grad, atol, rtol, $"{kind} {dtype} dLoss/d{name}"));
            log.WriteLine($"{kind} {dtype} parameter gradients ({grads.Count} tensors): max |diff| = {worst:E2}");
        }

        /// <summary>
        /// Autograd's dLoss/dθ against central differences with ε = 1e-6 in float64 for T5's own tensors (bias tables,
        /// RMS gains, the gated feed-forward, cross-attention, the untied head): 3 seeded entries each. As in
        /// <see cref="GeneratedGptNumericsTests.Loss_gradient_matches_central_finite_differences"/>, bound 1e-5 |g| + 1e-8.
        /// </summary>
        [Fact]
        public void Loss_gradient_matches_central_finite_differences()
        {
            using var scope = torch.NewDisposeScope();
            var (model, _) = Create(nameof(TinyT5));
            model.to(ScalarType.Float64);
            Randomize(model, 311);
            model.eval();
            var (source, mask) = PaddedSource(312);
            var decoderInput = Numerics.RandomIds(3, 9, 50, 313);
            var targets = Numerics.RandomIds(3, 9, 50, 314);
            var p = Numerics.Parameters(model);
            model.zero_grad();
            model.Loss(source, decoderInput, targets, mask).backward();

            double Loss()
            {
                using var inner = torch.NewDisposeScope();
                using var noGrad = torch.no_grad();
                return model.Loss(source, decoderInput, targets, mask).item<double>();
            }
            var names = new[]
            {
                "shared.weight", "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", "encoder.block.1.layer.0.layer_norm.weight",
                "encoder.final_layer_norm.weight", "decoder.block.1.layer.1.EncDecAttention.k.weight", "decoder.block.0.layer.2.DenseReluDense.wi_0.weight",
                "decoder.block.1.layer.2.DenseReluDense.wi_1.weight", "decoder.final_layer_norm.weight", "lm_head.weight",
            };
            var (worst, _) = Numerics.AssertFiniteDifferences(p, names, samples: 3, new Random(315), Loss);
            log.WriteLine($"finite differences (30 entries): max |diff| = {worst:E2}");
        }

        // ------------------------------------------------------------------------------------------------------
        // 2. Cross-attention vs libtorch's nn.MultiheadAttention with a key padding mask
        // ------------------------------------------------------------------------------------------------------

        /// <summary>
        /// model.CrossAttention against libtorch's MultiheadAttention with key_padding_mask, forward and every gradient.
        /// MultiheadAttention's inner width is its embed_dim; TinyT5's is Heads x HeadDim = 64 for Hidden = 32, so the
        /// reference runs at embed_dim 64 with the decoder states padded by 32 zero features (the query weight's extra
        /// columns are zero), keys and values of width kdim = vdim = 32, and the output projection's extra rows zero:
        /// the first 32 outputs are T5's cross-attention. Its queries are multiplied by sqrt(HeadDim), which cancels the
        /// 1/sqrt(HeadDim) that T5 leaves out. TinyTiedT5's width is Hidden (4 x 8 = 32): nothing is padded.
        /// </summary>
        [Theory]
        [InlineData(nameof(TinyT5), ScalarType.Float64)]
        [InlineData(nameof(TinyT5), ScalarType.Float32)]
        [InlineData(nameof(TinyTiedT5), ScalarType.Float64)]
        [InlineData(nameof(TinyTiedT5), ScalarType.Float32)]
        public void Cross_attention_matches_libtorch_MultiheadAttention_with_key_padding_mask(string kind, ScalarType dtype)
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var (model, arch) = Create(kind);
            model.to(dtype);
            Randomize(model, 321);
            var p = Numerics.Parameters(model);
            const int layer = 1;
            string at = $"decoder.block.{layer}.layer.1.EncDecAttention.";
            long hidden = p["shared.weight"].shape[1], width = arch.Heads * arch.HeadDim, extra = width - hidden;
            Assert.True(extra >= 0);

            var mha = nn.MultiheadAttention(width, arch.Heads, dropout: 0.0, bias: false, kdim: hidden, vdim: hidden);
            mha.to(dtype);
            mha.eval();
            var reference = Numerics.Parameters(mha);
            log.WriteLine("MultiheadAttention parameters: " + string.Join(", ", reference.Select(r => $"{r.Key} [{string.Join(", ", r.Value.shape)}]")));
            // Separate projections when kdim differs from embed_dim, one in_proj_weight [3E, E] otherwise.
            bool separate = reference.ContainsKey("q_proj_weight");
            Tensor QueryWeight() => separate ? reference["q_proj_weight"] : reference["in_proj_weight"].narrow(0, 0, width);
            Tensor KeyWeight() => separate ? reference["k_proj_weight"] : reference["in_proj_weight"].narrow(0, width, width);
            Tensor ValueWeight() => separate ? reference["v_proj_weight"] : reference["in_proj_weight"].narrow(0, 2 * width, width);
            using (torch.no_grad())
            {
                foreach (var tensor in reference.Values) tensor.zero_();
                QueryWeight().narrow(1, 0, hidden).copy_(p[at + "q.weight"]);                                       // [64, 32 of 64]
                KeyWeight().copy_(p[at + "k.weight"]);
                ValueWeight().copy_(p[at + "v.weight"]);
                reference["out_proj.weight"].narrow(0, 0, hidden).copy_(p[at + "o.weight"]);                        // [32 of 64, 64]
            }

            using var generator = new Generator(322);
            var h = torch.randn(new long[] { 3, 9, hidden }, dtype, generator: generator).requires_grad_();
            var encoded = torch.randn(new long[] { 3, 13, hidden }, dtype, generator: generator).requires_grad_();
            var r = torch.randn(new long[] { 3, 9, hidden }, dtype, generator: generator);
            var (_, mask) = PaddedSource(323);
            var hr = h.detach().clone().requires_grad_();
            var encodedR = encoded.detach().clone().requires_grad_();

            var y = kind == nameof(TinyT5)
                ? ((TinyT5.TorchSharpModel)model).CrossAttention(h, encoded, mask, layer, new ForwardState())
                : ((TinyTiedT5.TorchSharpModel)model).CrossAttention(h, encoded, mask, layer, new ForwardState());
            (y * r).sum().backward();

            // Sequence-first [T, B, E]; key_padding_mask is true where a key is padding.
            var query = torch.cat(new[] { hr * Math.Sqrt(arch.HeadDim), torch.zeros(new long[] { 3, 9, extra }, dtype) }, -1).transpose(0, 1);
            var memory = encodedR.transpose(0, 1);
            var yr = mha.call(query, memory, memory, mask.logical_not(), false, null).Item1.transpose(0, 1).narrow(-1, 0, hidden);
            (yr * r).sum().backward();

            Numerics.AssertClose(y, yr, atol, rtol, $"{kind} {dtype} cross-attention output", log);
            Numerics.AssertClose(h.grad, hr.grad, atol, rtol, $"{kind} {dtype} d/d decoder states", log);
            Numerics.AssertClose(encoded.grad, encodedR.grad, atol, rtol, $"{kind} {dtype} d/d encoder states", log);
            var padded = encoded.grad!.masked_select(mask.logical_not().unsqueeze(-1));
            Assert.Equal(0.0, padded.abs().max().to(ScalarType.Float64).item<double>());                             // padding gets no gradient
            // Gradients live on the leaf parameters, not on the views the weights were copied into.
            Tensor Gradient(string separateName, long block)
                => separate ? reference[separateName].grad! : reference["in_proj_weight"].grad!.narrow(0, block * width, width);
            Numerics.AssertClose(p[at + "q.weight"].grad, Gradient("q_proj_weight", 0).narrow(1, 0, hidden), atol, rtol, $"{kind} {dtype} d/dq.weight", log);
            Numerics.AssertClose(p[at + "k.weight"].grad, Gradient("k_proj_weight", 1), atol, rtol, $"{kind} {dtype} d/dk.weight", log);
            Numerics.AssertClose(p[at + "v.weight"].grad, Gradient("v_proj_weight", 2), atol, rtol, $"{kind} {dtype} d/dv.weight", log);
            Numerics.AssertClose(p[at + "o.weight"].grad, reference["out_proj.weight"].grad!.narrow(0, 0, hidden), atol, rtol, $"{kind} {dtype} d/do.weight", log);
        }

        // ------------------------------------------------------------------------------------------------------
        // 3. A decoder layer vs libtorch's nn.TransformerDecoderLayer
        // ------------------------------------------------------------------------------------------------------

        /// <summary>
        /// libtorch's TransformerDecoderLayer is the original Transformer's: post-norm LayerNorms (eps 1e-5), scaled
        /// attention with biases, no position bias. A T5 layer is pre-norm with RMS norms and a relative bias, so the
        /// generated DecoderLayer itself cannot be compared with it; its three sub-layers can. Composed post-norm with
        /// libtorch's layer_norm (the reference layer's own norm parameters, as constants) and a zero position bias, the
        /// generated DecoderSelfAttention (causal), CrossAttention (source padding) and DecoderFeedForward (ReLU) of
        /// TinyTiedT5 are exactly the reference layer with zero biases and its query weights multiplied by sqrt(HeadDim)
        /// (T5 does not scale scores); a query-weight gradient is then sqrt(HeadDim) times the reference's.
        /// </summary>
        [Theory]
        [InlineData(ScalarType.Float64)]
        [InlineData(ScalarType.Float32)]
        public void Generated_sub_layers_composed_post_norm_match_libtorch_TransformerDecoderLayer(ScalarType dtype)
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var model = TinyTiedT5.CreateTorchSharp();
            model.to(dtype);
            Randomize(model, 331);
            model.eval();
            var p = Numerics.Parameters(model);
            const int layer = 1, hidden = TinyTiedT5.TorchSharpModel.Hidden, heads = TinyTiedT5.TorchSharpModel.Heads;
            const int headDim = TinyTiedT5.TorchSharpModel.HeadDim, inner = TinyTiedT5.TorchSharpModel.Inner;
            double scale = Math.Sqrt(headDim);

            var decoderLayer = nn.TransformerDecoderLayer(hidden, heads, inner, dropout: 0.0, activation: nn.Activations.ReLU);
            decoderLayer.to(dtype);
            decoderLayer.eval();
            var reference = Numerics.Parameters(decoderLayer);
            string self = $"decoder.block.{layer}.layer.0.SelfAttention.", cross = $"decoder.block.{layer}.layer.1.EncDecAttention.";
            string ff = $"decoder.block.{layer}.layer.2.DenseReluDense.";
            // (generated weight, reference tensor, block of rows in it, reference = generated x factor)
            var map = new (string Generated, string Reference, long Block, double Factor)[]
            {
                (self + "q.weight", "self_attn.in_proj_weight", 0, scale),
                (self + "k.weight", "self_attn.in_proj_weight", 1, 1),
                (self + "v.weight", "self_attn.in_proj_weight", 2, 1),
                (self + "o.weight", "self_attn.out_proj.weight", 0, 1),
                (cross + "q.weight", "multihead_attn.in_proj_weight", 0, scale),
                (cross + "k.weight", "multihead_attn.in_proj_weight", 1, 1),
                (cross + "v.weight", "multihead_attn.in_proj_weight", 2, 1),
                (cross + "o.weight", "multihead_attn.out_proj.weight", 0, 1),
                (ff + "wi.weight", "linear1.weight", 0, 1),
                (ff + "wo.weight", "linear2.weight", 0, 1),
            };
            Tensor Rows(Tensor t, string generated, long block) => t.narrow(0, block * p[generated].shape[0], p[generated].shape[0]);
            using var generator = new Generator(332);
            using (torch.no_grad())
            {
                foreach (var (name, tensor) in reference)
                    if (name.StartsWith("norm", StringComparison.Ordinal))
                        tensor.normal_(name.EndsWith("weight", StringComparison.Ordinal) ? 1.0 : 0.0, name.EndsWith("weight", StringComparison.Ordinal) ? 0.2 : 0.1, generator);
                    else if (name.EndsWith("bias", StringComparison.Ordinal))
                        tensor.zero_();                                                                             // T5 has no biases
                foreach (var (generated, name, block, factor) in map)
                    Rows(reference[name], generated, block).copy_(p[generated] * factor);
            }

            var norms = Enumerable.Range(1, 3).Select(i => (Weight: reference[$"norm{i}.weight"].detach().clone(), Bias: reference[$"norm{i}.bias"].detach().clone())).ToArray();
            Tensor Norm(Tensor v, int i) => nn.functional.layer_norm(v, new long[] { hidden }, norms[i].Weight, norms[i].Bias, 1e-5);
            const long time = 9;
            var (_, mask) = PaddedSource(333);
            var noBias = torch.zeros(new long[] { heads, time, time }, dtype);
            var x = torch.randn(new long[] { 3, time, hidden }, dtype, generator: generator).requires_grad_();
            var memory = torch.randn(new long[] { 3, 13, hidden }, dtype, generator: generator).requires_grad_();
            var r = torch.randn(new long[] { 3, time, hidden }, dtype, generator: generator);
            var xr = x.detach().clone().requires_grad_();
            var memoryR = memory.detach().clone().requires_grad_();

            var state = new ForwardState();
            var x1 = Norm(x + model.DecoderSelfAttention(x, noBias, layer, state), 0);
            var x2 = Norm(x1 + model.CrossAttention(x1, memory, mask, layer, state), 1);
            var y = Norm(x2 + model.DecoderFeedForward(x2, layer), 2);
            (y * r).sum().backward();

            var yr = decoderLayer.call(xr.transpose(0, 1), memoryR.transpose(0, 1), Numerics.AdditiveCausalMask(time, dtype), null, null, mask.logical_not()).transpose(0, 1);
            (yr * r).sum().backward();

            Numerics.AssertClose(y, yr, atol, rtol, $"{dtype} decoder layer output", log);
            Numerics.AssertClose(x.grad, xr.grad, atol, rtol, $"{dtype} d/d decoder states", log);
            Numerics.AssertClose(memory.grad, memoryR.grad, atol, rtol, $"{dtype} d/d encoder states", log);
            foreach (var (generated, name, block, factor) in map)
                Numerics.AssertClose(p[generated].grad, Rows(reference[name].grad!, generated, block) * factor, atol, rtol, $"{dtype} d/d{generated}", log);
        }

        // ------------------------------------------------------------------------------------------------------
        // 4. Padding
        // ------------------------------------------------------------------------------------------------------

        /// <summary>
        /// What padding must not change. Each source row, padded to the batch's length and masked, gives the decoder the
        /// same logits as the row alone without padding; so does left padding, because T5 has no absolute positions and
        /// the relative bias depends only on key - query; and so does any id in the padded places. The encoder states
        /// of real tokens are unchanged too (those of padded places are not: they are computed, then never attended to).
        /// A decoder input padded on the right changes nothing before the padding (causal), and a loss over targets
        /// with -100 in the padded places is the mean over real targets of the whole batch. Without the mask the logits
        /// do change, which shows the comparison can fail. float64; rounding differences only (1e-10 + 1e-10 max|ref|).
        /// </summary>
        [Fact]
        public void Source_and_target_padding_change_nothing_the_decoder_computes_for_real_tokens()
        {
            const double atol = 1e-10, rtol = 1e-10;
            using var scope = torch.NewDisposeScope();
            var model = TinyT5.CreateTorchSharp();
            model.to(ScalarType.Float64);
            Randomize(model, 341);
            model.eval();
            using var noGrad = torch.no_grad();
            var (source, mask) = PaddedSource(342);
            long[] lengths = { 13, 8, 4 };
            var decoderInput = Numerics.RandomIds(3, 10, 50, 343);
            var logits = model.Forward(source, decoderInput, mask).Logits;
            var encoded = model.EncodeSource(source, mask);

            var leftSource = torch.zeros_like(source);
            var leftMask = torch.zeros_like(mask);
            var otherPads = source.clone();
            var noise = Numerics.RandomIds(3, 13, 50, 344);
            for (int b = 0; b < 3; b++)
            {
                long n = lengths[b];
                var alone = source[b].narrow(0, 0, n).unsqueeze(0);
                var aloneLogits = model.Forward(alone, decoderInput[b].unsqueeze(0)).Logits[0];
                Numerics.AssertClose(logits[b], aloneLogits, atol, rtol, $"row {b} ({n} tokens) padded to 13 vs alone", log);
                Numerics.AssertClose(encoded[b].narrow(0, 0, n), model.EncodeSource(alone)[0], atol, rtol, $"row {b} encoder states of real tokens", log);
                leftSource[b].narrow(0, 13 - n, n).copy_(alone[0]);
                leftMask[b].narrow(0, 13 - n, n).fill_(true);
                otherPads[b].narrow(0, n, 13 - n).copy_(noise[b].narrow(0, n, 13 - n));
            }
            Numerics.AssertClose(model.Forward(leftSource, decoderInput, leftMask).Logits, logits, atol, rtol, "left padding vs right padding", log);
            Numerics.AssertClose(model.Forward(otherPads, decoderInput, mask).Logits, logits, atol, rtol, "other ids in the padded places", log);

            double unmasked = (model.Forward(source, decoderInput).Logits - logits).abs().max().item<double>();
            log.WriteLine($"the same padded batch without its mask moves the logits by up to {unmasked:E2}");
            Assert.True(unmasked > 1e-3, "attending to padding should change the logits");

            // Targets: rows 1 and 2 end after 6 and 3 tokens; the decoder input is padded with 0 after that.
            long[] targetLengths = { 10, 6, 3 };
            var targets = Numerics.RandomIds(3, 10, 50, 345);
            var paddedInput = decoderInput.clone();
            for (int b = 0; b < 3; b++)
            {
                targets[b, TensorIndex.Slice(targetLengths[b], null)] = torch.tensor(-100L);
                paddedInput[b, TensorIndex.Slice(targetLengths[b], null)] = torch.tensor(0L);
            }
            var paddedLogits = model.Forward(source, paddedInput, mask).Logits;
            double sum = 0;
            for (int b = 0; b < 3; b++)
            {
                long n = targetLengths[b];
                Numerics.AssertClose(paddedLogits[b].narrow(0, 0, n), logits[b].narrow(0, 0, n), atol, rtol, $"row {b}: decoder logits before its padding");
                var rowLoss = model.Loss(source[b].narrow(0, 0, lengths[b]).unsqueeze(0), decoderInput[b].narrow(0, 0, n).unsqueeze(0), targets[b].narrow(0, 0, n).unsqueeze(0));
                sum += rowLoss.item<double>() * n;
            }
            Numerics.AssertClose(model.Loss(source, paddedInput, targets, mask), torch.tensor(sum / targetLengths.Sum(), ScalarType.Float64), atol, rtol,
                "padded batch loss vs the token-weighted mean of the rows' own losses", log);
        }
    }
}
