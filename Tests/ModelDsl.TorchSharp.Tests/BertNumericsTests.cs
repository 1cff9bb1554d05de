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
    /// The generated BERT modules (TinyBert: MLM head with the tied decoder; TinyBertClassifier: pooler and classifier)
    /// against independent references: libtorch's own nn.TransformerEncoderLayer (post-norm, exact GELU, eps 1e-5) and
    /// nn.MultiheadAttention, with our separate query/key/value/output weights copied into their in_proj/out_proj and the
    /// padding given as their key padding mask; and a forward pass written here from elementary ops (index_select
    /// embeddings, layer norm as (x - mean) / sqrt(var + eps), softmax as exp / sum, GELU from erf, tanh pooler), with
    /// autograd through that reference for every parameter gradient. Tolerances and their reasoning are those of
    /// <see cref="GeneratedGptNumericsTests"/>: float64 1e-10 + 1e-10 max|ref|, float32 1e-5 + 1e-5 max|ref|.
    /// </summary>
    public sealed class BertNumericsTests
    {
        private const int Heads = TinyBert.TorchSharpModel.Heads;
        private const int Layers = TinyBert.TorchSharpModel.EncoderLayers;
        private const double Epsilon = 1e-5; // restated from the declarations, not read from the generated code

        private readonly ITestOutputHelper log;

        public BertNumericsTests(ITestOutputHelper log) => this.log = log;

        /// <summary>Real tokens first, then padding: lengths per sequence, so some keys of every row but the first are masked.</summary>
        private static Tensor PaddingMask(long time, params long[] lengths)
            => torch.arange(time, dtype: ScalarType.Int64).unsqueeze(0).lt(torch.tensor(lengths).unsqueeze(1));

        private static Tensor RandomSegments(long batch, long time, ulong seed) => Numerics.RandomIds(batch, time, 2, seed);

        // ------------------------------------------------------------------------------------------------------
        // 1. One encoder layer and its self-attention vs libtorch's modules, with padding
        // ------------------------------------------------------------------------------------------------------

        /// <summary>A generated tensor and the rows [start, start + length) of a reference parameter it fills.</summary>
        private sealed record Copy(Tensor Generated, string Reference, long Start = 0, long Length = -1)
        {
            public Tensor Of(Tensor reference) => Length < 0 ? reference : reference.narrow(0, Start, Length);
        }

        /// <summary>Our separate query, key and value projections are the row blocks of libtorch's fused in_proj [3E, E].</summary>
        private static IEnumerable<Copy> AttentionCopies(TinyBert.TorchSharpModel.BertAttention attention, string prefix)
        {
            const long hidden = TinyBert.TorchSharpModel.Hidden;
            var self = attention.self;
            yield return new Copy(self.query.weight, prefix + "in_proj_weight", 0, hidden);
            yield return new Copy(self.key.weight, prefix + "in_proj_weight", hidden, hidden);
            yield return new Copy(self.value.weight, prefix + "in_proj_weight", 2 * hidden, hidden);
            yield return new Copy(self.query.bias!, prefix + "in_proj_bias", 0, hidden);
            yield return new Copy(self.key.bias!, prefix + "in_proj_bias", hidden, hidden);
            yield return new Copy(self.value.bias!, prefix + "in_proj_bias", 2 * hidden, hidden);
            yield return new Copy(attention.output.dense.weight, prefix + "out_proj.weight");
            yield return new Copy(attention.output.dense.bias!, prefix + "out_proj.bias");
        }

        private static void CopyInto(IReadOnlyDictionary<string, Tensor> reference, IEnumerable<Copy> copies)
        {
            using var noGrad = torch.no_grad();
            foreach (var c in copies) c.Of(reference[c.Reference]).copy_(c.Generated);
        }

        private void AssertGradients(IEnumerable<Copy> copies, IReadOnlyDictionary<string, Tensor> reference, double atol, double rtol, string what)
        {
            foreach (var c in copies)
            {
                var expected = reference[c.Reference].grad;
                Assert.True(expected is not null, $"no gradient reached the reference's {c.Reference}");
                Numerics.AssertClose(c.Generated.grad, c.Of(expected!), atol, rtol, $"{what}: dL/d{c.Reference}[{c.Start}..+{c.Length}]", log);
            }
        }

        [Theory]
        [InlineData(ScalarType.Float64)]
        [InlineData(ScalarType.Float32)]
        public void Self_attention_with_padding_matches_libtorch_MultiheadAttention_key_padding_mask(ScalarType dtype)
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var model = TinyBert.CreateTorchSharp();
            model.to(dtype);
            Numerics.Randomize(model, 301);
            const long batch = 3, time = 11, hidden = TinyBert.TorchSharpModel.Hidden;

            var mha = nn.MultiheadAttention(hidden, Heads, dropout: 0.0);
            mha.to(dtype);
            mha.eval();
            var reference = Numerics.Parameters(mha);
            var copies = AttentionCopies(model.bert.encoder.layer[1].attention, "").ToList();
            Assert.Equal(reference.Keys.OrderBy(k => k, StringComparer.Ordinal), copies.Select(c => c.Reference).Distinct().OrderBy(k => k, StringComparer.Ordinal));
            CopyInto(reference, copies);

            using var generator = new Generator(302);
            var x = torch.randn(new[] { batch, time, hidden }, dtype, generator: generator).requires_grad_();
            var r = torch.randn(new[] { batch, time, hidden }, dtype, generator: generator);
            var xr = x.detach().clone().requires_grad_();
            var mask = PaddingMask(time, 11, 7, 3);

            var y = model.SelfAttention(x, mask, 1, new ForwardState());
            (y * r).sum().backward();
            // libtorch's C++ MultiheadAttention is sequence-first; its key_padding_mask is true where a key is padding.
            var seqFirst = xr.transpose(0, 1);
            var yr = mha.call(seqFirst, seqFirst, seqFirst, mask.logical_not(), false, null).Item1.transpose(0, 1);
            (yr * r).sum().backward();

            Numerics.AssertClose(y, yr, atol, rtol, $"{dtype} padded self-attention output", log);
            Numerics.AssertClose(x.grad, xr.grad, atol, rtol, $"{dtype} padded self-attention d(out.R)/dx", log);
            AssertGradients(copies, reference, atol, rtol, $"{dtype} padded self-attention");
        }

        /// <summary>
        /// libtorch's C++ TransformerEncoderLayer is post-norm with LayerNorm eps 1e-5, exact GELU when asked: BERT's layer.
        /// The padding goes in as src_key_padding_mask; padded query rows are compared too (both attend to the real keys).
        /// </summary>
        [Theory]
        [InlineData(ScalarType.Float64)]
        [InlineData(ScalarType.Float32)]
        public void Encoder_layer_with_padding_matches_libtorch_TransformerEncoderLayer(ScalarType dtype)
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var model = TinyBert.CreateTorchSharp();
            model.to(dtype);
            Numerics.Randomize(model, 311);
            model.eval();
            const long batch = 3, time = 13, hidden = TinyBert.TorchSharpModel.Hidden;
            var block = model.bert.encoder.layer[0];

            var layer = nn.TransformerEncoderLayer(hidden, Heads, TinyBert.TorchSharpModel.Inner, dropout: 0.0, activation: nn.Activations.GELU);
            layer.to(dtype);
            layer.eval();
            var reference = Numerics.Parameters(layer);
            var copies = AttentionCopies(block.attention, "self_attn.").Concat(new[]
            {
                new Copy(block.attention.output.LayerNorm.weight!, "norm1.weight"),
                new Copy(block.attention.output.LayerNorm.bias!, "norm1.bias"),
                new Copy(block.intermediate.dense.weight, "linear1.weight"),
                new Copy(block.intermediate.dense.bias!, "linear1.bias"),
                new Copy(block.output.dense.weight, "linear2.weight"),
                new Copy(block.output.dense.bias!, "linear2.bias"),
                new Copy(block.output.LayerNorm.weight!, "norm2.weight"),
                new Copy(block.output.LayerNorm.bias!, "norm2.bias"),
            }).ToList();
            Assert.Equal(reference.Keys.OrderBy(k => k, StringComparer.Ordinal), copies.Select(c => c.Reference).Distinct().OrderBy(k => k, StringComparer.Ordinal));
            CopyInto(reference, copies);

            using var generator = new Generator(312);
            var x = torch.randn(new[] { batch, time, hidden }, dtype, generator: generator).requires_grad_();
            var r = torch.randn(new[] { batch, time, hidden }, dtype, generator: generator);
            var xr = x.detach().clone().requires_grad_();
            var mask = PaddingMask(time, 13, 9, 1);

            var y = model.EncoderLayer(x, mask, 0, new ForwardState());
            (y * r).sum().backward();
            var yr = layer.call(xr.transpose(0, 1), null, mask.logical_not()).transpose(0, 1); // autograd on: the plain path
            (yr * r).sum().backward();

            Numerics.AssertClose(y, yr, atol, rtol, $"{dtype} encoder layer output", log);
            Numerics.AssertClose(x.grad, xr.grad, atol, rtol, $"{dtype} encoder layer d(out.R)/dx", log);
            AssertGradients(copies, reference, atol, rtol, $"{dtype} encoder layer");
        }

        // ------------------------------------------------------------------------------------------------------
        // 2. Whole models vs a forward pass written from elementary ops
        // ------------------------------------------------------------------------------------------------------

        /// <summary>
        /// The encoder's output [B, T, Hidden] from elementary ops: word + position + segment embeddings, the embedding
        /// LayerNorm, then per layer x = norm(x + attention(x)), x = norm(x + W2 gelu(W1 x)). Padding enters as Hugging
        /// Face's extended attention mask: the dtype's lowest value added to the scores of padded keys (so a row whose keys
        /// are all padding attends uniformly, as in transformers' BertModel).
        /// </summary>
        internal static Tensor ReferenceEncoder(IReadOnlyDictionary<string, Tensor> p, Tensor ids, Tensor segments, Tensor mask)
        {
            long batch = ids.shape[0], time = ids.shape[1];
            var word = p["bert.embeddings.word_embeddings.weight"];
            long hidden = word.shape[1], headDim = hidden / Heads;
            var dtype = word.dtype;
            var x = word.index_select(0, ids.flatten()).view(batch, time, hidden)
                    + p["bert.embeddings.position_embeddings.weight"].index_select(0, torch.arange(time, dtype: ScalarType.Int64))
                    + p["bert.embeddings.token_type_embeddings.weight"].index_select(0, segments.flatten()).view(batch, time, hidden);
            x = Norm(p, x, "bert.embeddings.LayerNorm");
            double lowest = dtype == ScalarType.Float64 ? double.MinValue : float.MinValue;
            var additive = mask.logical_not().to(dtype).mul(lowest).view(batch, 1, 1, time); // [B, 1, 1, K]

            Tensor Split(Tensor v) => v.view(batch, time, Heads, headDim).permute(0, 2, 1, 3);
            for (int layer = 0; layer < Layers; layer++)
            {
                string l = $"bert.encoder.layer.{layer}.";
                var q = Split(Dense(p, x, l + "attention.self.query"));
                var k = Split(Dense(p, x, l + "attention.self.key"));
                var v = Split(Dense(p, x, l + "attention.self.value"));
                var scores = q.matmul(k.transpose(-2, -1)) / Math.Sqrt(headDim) + additive;
                var e = (scores - scores.amax(new long[] { -1 }, keepdim: true)).exp();
                var y = (e / e.sum(-1, keepdim: true)).matmul(v).permute(0, 2, 1, 3).reshape(batch, time, hidden);
                x = Norm(p, x + Dense(p, y, l + "attention.output.dense"), l + "attention.output.LayerNorm");
                x = Norm(p, x + Dense(p, Gelu(Dense(p, x, l + "intermediate.dense")), l + "output.dense"), l + "output.LayerNorm");
            }
            return x;
        }

        /// <summary>BertForMaskedLM's logits: transform (dense, GELU, LayerNorm), then the word embedding transposed plus cls.predictions.bias.</summary>
        internal static Tensor ReferenceMaskedLogits(IReadOnlyDictionary<string, Tensor> p, Tensor ids, Tensor segments, Tensor mask)
        {
            var h = Norm(p, Gelu(Dense(p, ReferenceEncoder(p, ids, segments, mask), "cls.predictions.transform.dense")), "cls.predictions.transform.LayerNorm");
            return h.matmul(p["bert.embeddings.word_embeddings.weight"].t()) + p["cls.predictions.bias"];
        }

        /// <summary>BertForSequenceClassification's logits: tanh pooler on the first token, then the classifier.</summary>
        internal static Tensor ReferenceClassLogits(IReadOnlyDictionary<string, Tensor> p, Tensor ids, Tensor segments, Tensor mask)
        {
            var first = ReferenceEncoder(p, ids, segments, mask).select(1, 0);
            return Dense(p, Dense(p, first, "bert.pooler.dense").tanh(), "classifier");
        }

        private static Tensor Dense(IReadOnlyDictionary<string, Tensor> p, Tensor x, string name)
            => x.matmul(p[name + ".weight"].t()) + p[name + ".bias"];

        private static Tensor Gelu(Tensor v) => 0.5 * v * (1 + (v / Math.Sqrt(2)).erf());

        private static Tensor Norm(IReadOnlyDictionary<string, Tensor> p, Tensor v, string name)
        {
            var centred = v - v.mean(new long[] { -1 }, keepdim: true);
            var variance = (centred * centred).mean(new long[] { -1 }, keepdim: true);
            return centred / (variance + Epsilon).sqrt() * p[name + ".weight"] + p[name + ".bias"];
        }

        /// <summary>Targets as BERT's masking leaves them: a seeded ~30% of the real positions keep an id, the rest are -100.</summary>
        private static Tensor MaskedTargets(Tensor mask, long vocab, ulong seed)
        {
            using var generator = new Generator(seed);
            var chosen = torch.rand(mask.shape, ScalarType.Float64, generator: generator).lt(0.3).logical_and(mask);
            chosen[0, 0] = torch.tensor(true); // at least one target
            var ids = torch.randint(vocab, mask.shape, ScalarType.Int64, generator: generator);
            return torch.where(chosen, ids, torch.full_like(ids, TransformerModel.IgnoredTarget));
        }

        private void AssertParameterGradients(nn.Module model, Func<Tensor> generatedLoss, Func<Tensor> referenceLoss, double atol, double rtol, string what)
        {
            model.zero_grad();
            var loss = generatedLoss();
            loss.backward();
            var grads = model.named_parameters().ToDictionary(q => q.name, q => q.parameter.grad!.clone());
            model.zero_grad();
            var expected = referenceLoss();
            expected.backward();

            Numerics.AssertClose(loss, expected, atol, rtol, $"{what} loss", log);
            double worst = 0;
            foreach (var (name, parameter) in model.named_parameters())
            {
                Assert.True(parameter.grad is not null, $"{what}: no reference gradient reached {name}");
                // The key bias adds q.b to every score of a query's row, which softmax ignores: its gradient is zero by
                // mathematics (rounding noise on both sides). Every other gradient must be large enough to be seen.
                if (!name.EndsWith("attention.self.key.bias", StringComparison.Ordinal))
                    Assert.True(grads[name].abs().max().to(ScalarType.Float64).item<double>() > 1e-3, $"{what}: the gradient of {name} is ~0; the test would not see it");
                worst = Math.Max(worst, Numerics.AssertClose(grads[name], parameter.grad, atol, rtol, $"{what} dLoss/d{name}"));
            }
            log.WriteLine($"{what} parameter gradients ({grads.Count} tensors): max |diff| = {worst:E2}");
        }

        [Theory]
        [InlineData(ScalarType.Float64)]
        [InlineData(ScalarType.Float32)]
        public void Masked_language_model_logits_loss_and_gradients_match_elementary_reference(ScalarType dtype)
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var model = TinyBert.CreateTorchSharp();
            model.to(dtype);
            Numerics.Randomize(model, 321);
            model.eval();
            var p = Numerics.Parameters(model);
            Assert.False(p.ContainsKey("cls.predictions.decoder.weight")); // tied: the decoder is the word embedding
            const long batch = 3, time = TinyBert.TorchSharpModel.Context;
            var ids = Numerics.RandomIds(batch, time, TinyBert.TorchSharpModel.Vocab, 322);
            var segments = RandomSegments(batch, time, 323);
            var mask = PaddingMask(time, 16, 10, 5);
            var targets = MaskedTargets(mask, TinyBert.TorchSharpModel.Vocab, 324);

            var logits = model.Forward(ids, segments, mask).Logits;
            Numerics.AssertClose(logits, ReferenceMaskedLogits(p, ids, segments, mask), atol, rtol, $"{dtype} MLM logits", log);

            // A shorter sequence without a mask or segments: positions follow T, the defaults are no padding and segment 0.
            var shortIds = ids.narrow(1, 0, 7);
            Numerics.AssertClose(model.Forward(shortIds).Logits,
                ReferenceMaskedLogits(p, shortIds, torch.zeros_like(shortIds), torch.ones(shortIds.shape, ScalarType.Bool)),
                atol, rtol, $"{dtype} MLM logits T=7, default segments and mask", log);

            AssertParameterGradients(model,
                () => model.Loss(ids, targets, segments, mask),
                () => GeneratedGptNumericsTests.ReferenceLoss(ReferenceMaskedLogits(p, ids, segments, mask), targets),
                atol, rtol, $"{dtype} MLM");
        }

        [Theory]
        [InlineData(ScalarType.Float64)]
        [InlineData(ScalarType.Float32)]
        public void Classifier_logits_loss_and_gradients_match_elementary_reference(ScalarType dtype)
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var model = TinyBertClassifier.CreateTorchSharp();
            model.to(dtype);
            Numerics.Randomize(model, 331);
            model.eval();
            var p = Numerics.Parameters(model);
            const long batch = 4, time = 12;
            var ids = Numerics.RandomIds(batch, time, TinyBertClassifier.TorchSharpModel.Vocab, 332);
            var segments = RandomSegments(batch, time, 333);
            var mask = PaddingMask(time, 12, 8, 3, 1);
            var labels = torch.tensor(new long[] { 2, 0, 1, 2 });

            var logits = model.Forward(ids, segments, mask).Logits;
            Assert.Equal(new long[] { batch, TinyBertClassifier.TorchSharpModel.Classes }, logits.shape);
            Numerics.AssertClose(logits, ReferenceClassLogits(p, ids, segments, mask), atol, rtol, $"{dtype} class logits", log);

            AssertParameterGradients(model,
                () => model.Loss(ids, labels, segments, mask),
                () => GeneratedGptNumericsTests.ReferenceLoss(ReferenceClassLogits(p, ids, segments, mask), labels),
                atol, rtol, $"{dtype} classifier");
        }

        // ------------------------------------------------------------------------------------------------------
        // 3. Padding
        // ------------------------------------------------------------------------------------------------------

        /// <summary>
        /// Real tokens padded with arbitrary ids (two different paddings) give the logits of the unpadded sequence at the
        /// real positions: no real query attends to a padded key. In float64 the remaining difference is rounding only.
        /// </summary>
        [Fact]
        public void Padded_positions_do_not_change_the_logits_of_real_positions()
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(ScalarType.Float64);
            using var scope = torch.NewDisposeScope();
            var mlm = TinyBert.CreateTorchSharp();
            var classifier = TinyBertClassifier.CreateTorchSharp();
            const long real = 6, padded = 14;
            var ids = Numerics.RandomIds(2, real, TinyBert.TorchSharpModel.Vocab, 342);
            var segments = RandomSegments(2, real, 343);
            var mask = PaddingMask(padded, real, real);

            foreach (var (model, name) in new (TransformerModel Model, string Name)[] { (mlm, "MLM"), (classifier, "classifier") })
            {
                model.to(ScalarType.Float64);
                Numerics.Randomize(model, 341);
                model.eval();
                Tensor Forward(Tensor i, Tensor s, Tensor? m) => model switch
                {
                    MaskedLanguageModel lm => lm.Forward(i, s, m).Logits,
                    SequenceClassificationModel c => c.Forward(i, s, m).Logits,
                    _ => throw new InvalidOperationException(),
                };
                using var noGrad = torch.no_grad();
                var alone = Forward(ids, segments, null);
                Tensor Padded(ulong seed)
                {
                    var padIds = torch.cat(new[] { ids, Numerics.RandomIds(2, padded - real, TinyBert.TorchSharpModel.Vocab, seed) }, 1);
                    var padSegments = torch.cat(new[] { segments, RandomSegments(2, padded - real, seed + 1) }, 1);
                    var logits = Forward(padIds, padSegments, mask);
                    return name == "MLM" ? logits.narrow(1, 0, real) : logits;
                }
                var first = Padded(344);
                var second = Padded(346);
                Numerics.AssertClose(first, alone, atol, rtol, $"{name}: real positions with padding vs without", log);
                Numerics.AssertClose(second, first, atol, rtol, $"{name}: real positions under two different paddings", log);

                // The mask is what makes this true: without it the padded tokens change every real position.
                var unmasked = Forward(torch.cat(new[] { ids, Numerics.RandomIds(2, padded - real, TinyBert.TorchSharpModel.Vocab, 344) }, 1),
                                       torch.cat(new[] { segments, RandomSegments(2, padded - real, 345) }, 1), null);
                var unmaskedReal = name == "MLM" ? unmasked.narrow(1, 0, real) : unmasked;
                Assert.True((unmaskedReal - alone).abs().max().item<double>() > 1e-3, $"{name}: unmasked padding should change the logits");
            }
        }

        /// <summary>
        /// A sequence that is all padding has no key to attend to. Like Hugging Face's BertModel, whose mask adds the
        /// dtype's lowest value instead of -inf, it attends uniformly and stays finite (a -inf mask gives NaN): equal to
        /// the elementary reference, which adds the same lowest value, in float32 and float64.
        /// </summary>
        [Theory]
        [InlineData(ScalarType.Float64)]
        [InlineData(ScalarType.Float32)]
        public void Fully_padded_sequence_gives_finite_logits(ScalarType dtype)
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            const long time = 9;
            var ids = Numerics.RandomIds(2, time, TinyBert.TorchSharpModel.Vocab, 352);
            var segments = RandomSegments(2, time, 353);
            var mask = PaddingMask(time, 0, 5); // the first sequence is all padding

            var mlm = TinyBert.CreateTorchSharp();
            mlm.to(dtype);
            Numerics.Randomize(mlm, 351);
            mlm.eval();
            var logits = mlm.Forward(ids, segments, mask).Logits;
            Assert.True(logits.isfinite().all().item<bool>(), $"{dtype}: MLM logits of a fully padded sequence are not finite");
            Numerics.AssertClose(logits, ReferenceMaskedLogits(Numerics.Parameters(mlm), ids, segments, mask), atol, rtol, $"{dtype} MLM logits, one sequence all padding", log);

            var classifier = TinyBertClassifier.CreateTorchSharp();
            classifier.to(dtype);
            Numerics.Randomize(classifier, 354);
            classifier.eval();
            var classes = classifier.Forward(ids, segments, mask).Logits;
            Assert.True(classes.isfinite().all().item<bool>(), $"{dtype}: class logits of a fully padded sequence are not finite");
            Numerics.AssertClose(classes, ReferenceClassLogits(Numerics.Parameters(classifier), ids, segments, mask), atol, rtol, $"{dtype} class logits, one sequence all padding", log);
        }

        // ------------------------------------------------------------------------------------------------------
        // 4. Input checks
        // ------------------------------------------------------------------------------------------------------

        [Fact]
        public void Bad_masks_segments_and_labels_are_named_with_the_model()
        {
            using var scope = torch.NewDisposeScope();
            var mlm = TinyBert.CreateTorchSharp();
            var ids = Numerics.RandomIds(2, 8, TinyBert.TorchSharpModel.Vocab, 361);

            var e = Assert.Throws<ArgumentException>(() => mlm.Forward(ids, null, torch.ones(2, 8, ScalarType.Int64)));
            Assert.Contains("Model 'TinyBert'", e.Message);
            Assert.Contains("padding mask must be bool shaped like the ids [2, 8]", e.Message);
            e = Assert.Throws<ArgumentException>(() => mlm.Forward(ids, null, torch.ones(2, 7, ScalarType.Bool)));
            Assert.Contains("[2, 7]", e.Message);

            var segments = torch.zeros_like(ids);
            segments[1, 3] = torch.tensor(2L);
            var outside = Assert.Throws<ArgumentOutOfRangeException>(() => mlm.Forward(ids, segments));
            Assert.Contains("Model 'TinyBert': a segment id is outside [0, 2)", outside.Message);

            var tooLong = Numerics.RandomIds(1, TinyBert.TorchSharpModel.Context + 1, TinyBert.TorchSharpModel.Vocab, 362);
            e = Assert.Throws<ArgumentException>(() => mlm.Forward(tooLong));
            Assert.Contains("dimension 1 (time) is 17", e.Message);

            var classifier = TinyBertClassifier.CreateTorchSharp();
            outside = Assert.Throws<ArgumentOutOfRangeException>(() => classifier.Loss(ids, torch.tensor(new long[] { 0, 3 })));
            Assert.Contains("Model 'TinyBertClassifier'", outside.Message);
            Assert.Contains("outside [0, 3)", outside.Message);
            e = Assert.Throws<ArgumentException>(() => classifier.Loss(ids, torch.tensor(new long[] { 0, 1, 2 })));
            Assert.Contains("labels must be int64 shaped [2]", e.Message);
        }
    }
}
