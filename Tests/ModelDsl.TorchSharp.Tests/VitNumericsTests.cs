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
    /// Three channels, so that the channel-major order of a flattened patch matters (TinyVit has one); 2 x 2 patches
    /// of 4 x 4 on 8 x 8 images; no norm attribute, so the family's default (pre-norm, Hugging Face's eps 1e-12);
    /// dropout 0.1, which eval mode must switch off.
    /// </summary>
    [VisionEncoder(ImageSize = 8, PatchSize = 4, Channels = 3, Hidden = 32, Heads = 4, Layers = 1, Classes = 5)]
    [FeedForward(Inner = 48)]
    [Dropout(0.1)]
    public partial record TinyRgbVit;

    /// <summary>
    /// The generated ViT code against independent references: the patch embedding against libtorch's im2col
    /// (nn.functional.unfold) and a matrix product with the Conv2d weight flattened as [Hidden, C*P*P]; the pre-norm
    /// encoder layer against a composition of libtorch's nn.LayerNorm, nn.MultiheadAttention, nn.Linear and GELU
    /// (TorchSharp 0.107's nn.TransformerEncoderLayer has no norm_first and a fixed eps of 1e-5, so it cannot be the
    /// reference here); whole-model logits, loss and every parameter gradient against a forward pass written from
    /// elementary ops (reshape/permute patches, mean/variance norms, exp/sum softmax, the erf GELU), differentiated by
    /// autograd; central finite differences for the ViT-only parameters. Tolerances as in
    /// <see cref="GeneratedGptNumericsTests"/>: float64 1e-10 + 1e-10 max|ref|, float32 1e-5 + 1e-5 max|ref|.
    /// </summary>
    public sealed class VitNumericsTests : IDisposable
    {
        private readonly ITestOutputHelper log;
        private readonly OneTorchThread thread = new();

        public VitNumericsTests(ITestOutputHelper log) => this.log = log;

        public void Dispose() => thread.Dispose();

        /// <summary>What each declaration says, restated here (not read from the generated code).</summary>
        internal sealed record Architecture(int ImageSize, int PatchSize, int Channels, int Hidden, int Heads, int Layers, int Classes, double Epsilon);

        internal static readonly Architecture TinyVitArchitecture = new(16, 4, 1, 32, 4, 2, 10, 1e-6);
        internal static readonly Architecture TinyRgbVitArchitecture = new(8, 4, 3, 32, 4, 1, 5, 1e-12);

        internal static (ImageClassificationModel Model, Architecture Arch) Create(string kind) => kind switch
        {
            nameof(TinyVit) => (TinyVit.CreateTorchSharp(), TinyVitArchitecture),
            nameof(TinyRgbVit) => (TinyRgbVit.CreateTorchSharp(), TinyRgbVitArchitecture),
            _ => throw new ArgumentException(kind, nameof(kind)),
        };

        /// <summary>Seeded N(0, 1) images [batch, C, I, I] (what normalised pixels look like).</summary>
        internal static Tensor RandomImages(long batch, Architecture a, ScalarType dtype, ulong seed)
        {
            using var generator = new Generator(seed);
            return torch.randn(new long[] { batch, a.Channels, a.ImageSize, a.ImageSize }, dtype, generator: generator);
        }

        // ------------------------------------------------------------------------------------------------------
        // 1. Patch embedding vs libtorch's im2col
        // ------------------------------------------------------------------------------------------------------

        /// <summary>
        /// F.unfold gives each patch as a column of C*P*P values, channel-major (channel, then row, then column within
        /// the patch), patches in row-major order: exactly the order of a Conv2d weight [Hidden, C, P, P] flattened.
        /// </summary>
        [Theory]
        [InlineData(nameof(TinyRgbVit), ScalarType.Float64)]
        [InlineData(nameof(TinyRgbVit), ScalarType.Float32)]
        [InlineData(nameof(TinyVit), ScalarType.Float64)]
        public void Patch_embedding_matches_an_unfold_reference_forward_and_gradients(string kind, ScalarType dtype)
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var (model, a) = Create(kind);
            model.to(dtype);
            Numerics.Randomize(model, 301);
            var p = Numerics.Parameters(model);
            var weight = p["vit.embeddings.patch_embeddings.projection.weight"];
            var bias = p["vit.embeddings.patch_embeddings.projection.bias"];
            Assert.Equal(new long[] { a.Hidden, a.Channels, a.PatchSize, a.PatchSize }, weight.shape);
            var projection = (nn.Module<Tensor, Tensor>)model.named_modules().Single(m => m.name == "vit.embeddings.patch_embeddings.projection").module;

            var pixels = RandomImages(3, a, dtype, 302).requires_grad_();
            var pixelsReference = pixels.detach().clone().requires_grad_();
            long patches = (long)(a.ImageSize / a.PatchSize) * (a.ImageSize / a.PatchSize);
            using var generator = new Generator(303);
            var r = torch.randn(new long[] { 3, patches, a.Hidden }, dtype, generator: generator);

            var y = TransformerModel.PatchEmbedding(pixels, projection);
            (y * r).sum().backward();
            var weightGrad = weight.grad!.clone();
            var biasGrad = bias.grad!.clone();
            model.zero_grad();

            var columns = nn.functional.unfold(pixelsReference, a.PatchSize, stride: a.PatchSize);   // [B, C*P*P, Patches]
            var expected = columns.transpose(1, 2).matmul(weight.reshape(a.Hidden, -1).t()) + bias;  // [B, Patches, Hidden]
            (expected * r).sum().backward();

            Numerics.AssertClose(y, expected, atol, rtol, $"{kind} {dtype} patch embedding", log);
            Numerics.AssertClose(pixels.grad, pixelsReference.grad, atol, rtol, $"{kind} {dtype} d(out.R)/d pixels", log);
            Numerics.AssertClose(weightGrad, weight.grad, atol, rtol, $"{kind} {dtype} d(out.R)/d projection.weight", log);
            Numerics.AssertClose(biasGrad, bias.grad, atol, rtol, $"{kind} {dtype} d(out.R)/d projection.bias", log);
        }

        /// <summary>The class token goes first, unchanged, for every image; the patches follow in order.</summary>
        [Fact]
        public void Class_token_is_prepended_to_every_sequence_and_gets_the_summed_gradient()
        {
            using var scope = torch.NewDisposeScope();
            using var generator = new Generator(311);
            var token = torch.randn(new long[] { 1, 1, 8 }, ScalarType.Float64, generator: generator).requires_grad_();
            var patches = torch.randn(new long[] { 3, 5, 8 }, ScalarType.Float64, generator: generator);
            var r = torch.randn(new long[] { 3, 6, 8 }, ScalarType.Float64, generator: generator);

            var x = TransformerModel.ClassToken(patches, token);
            (x * r).sum().backward();

            Assert.Equal(new long[] { 3, 6, 8 }, x.shape);
            for (int b = 0; b < 3; b++) Assert.True(Numerics.Identical(x[b, 0], token[0, 0]), $"image {b}: position 0 is the class token");
            Assert.True(Numerics.Identical(x.narrow(1, 1, 5), patches), "positions 1.. are the patches in order");
            Numerics.AssertClose(token.grad, r.select(1, 0).sum(new long[] { 0 }).view(1, 1, 8), 1e-12, 1e-12, "d(out.R)/d cls_token = sum over images of R[:, 0]", log);
        }

        // ------------------------------------------------------------------------------------------------------
        // 2. The pre-norm encoder layer vs libtorch modules
        // ------------------------------------------------------------------------------------------------------

        [Theory]
        [InlineData(nameof(TinyVit), ScalarType.Float64)]
        [InlineData(nameof(TinyVit), ScalarType.Float32)]
        [InlineData(nameof(TinyRgbVit), ScalarType.Float64)]
        public void Encoder_layer_matches_composition_of_libtorch_modules(string kind, ScalarType dtype)
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var (model, a) = Create(kind);
            model.to(dtype);
            Numerics.Randomize(model, 321);
            model.eval();
            int layer = a.Layers - 1;
            Func<Tensor, Tensor> generated = model switch
            {
                TinyVit.TorchSharpModel vit => x => vit.EncoderLayer(x, layer, new ForwardState()),
                TinyRgbVit.TorchSharpModel rgb => x => rgb.EncoderLayer(x, layer, new ForwardState()),
                _ => throw new NotSupportedException(kind),
            };
            var p = Numerics.Parameters(model);
            string l = $"vit.encoder.layer.{layer}.";
            long hidden = a.Hidden, inner = p[l + "intermediate.dense.bias"].shape[0];

            var ln1 = nn.LayerNorm(hidden, a.Epsilon);
            var mha = nn.MultiheadAttention(hidden, a.Heads, dropout: 0.0);
            var ln2 = nn.LayerNorm(hidden, a.Epsilon);
            var linear1 = nn.Linear(hidden, inner);
            var linear2 = nn.Linear(inner, hidden);
            var reference = new Dictionary<string, Tensor>();
            foreach (var (prefix, module) in new (string, nn.Module)[] { ("ln1.", ln1), ("mha.", mha), ("ln2.", ln2), ("linear1.", linear1), ("linear2.", linear2) })
            {
                module.to(dtype);
                module.eval();
                foreach (var (name, value) in Numerics.Parameters(module)) reference[prefix + name] = value;
            }
            // Generated tensor -> the slice of a reference tensor it must equal (rows of dimension 0; -1 = all).
            // nn.MultiheadAttention stacks the query, key and value projections in in_proj_weight [3E, E], as nn.Linear stores them.
            var map = new (string Generated, string Reference, long Offset, long Rows)[]
            {
                ("layernorm_before.weight", "ln1.weight", 0, -1),
                ("layernorm_before.bias", "ln1.bias", 0, -1),
                ("attention.attention.query.weight", "mha.in_proj_weight", 0, hidden),
                ("attention.attention.key.weight", "mha.in_proj_weight", hidden, hidden),
                ("attention.attention.value.weight", "mha.in_proj_weight", 2 * hidden, hidden),
                ("attention.attention.query.bias", "mha.in_proj_bias", 0, hidden),
                ("attention.attention.key.bias", "mha.in_proj_bias", hidden, hidden),
                ("attention.attention.value.bias", "mha.in_proj_bias", 2 * hidden, hidden),
                ("attention.output.dense.weight", "mha.out_proj.weight", 0, -1),
                ("attention.output.dense.bias", "mha.out_proj.bias", 0, -1),
                ("layernorm_after.weight", "ln2.weight", 0, -1),
                ("layernorm_after.bias", "ln2.bias", 0, -1),
                ("intermediate.dense.weight", "linear1.weight", 0, -1),
                ("intermediate.dense.bias", "linear1.bias", 0, -1),
                ("output.dense.weight", "linear2.weight", 0, -1),
                ("output.dense.bias", "linear2.bias", 0, -1),
            };
            Assert.Equal(p.Keys.Where(k => k.StartsWith(l, StringComparison.Ordinal)).OrderBy(k => k, StringComparer.Ordinal),
                         map.Select(m => l + m.Generated).OrderBy(k => k, StringComparer.Ordinal));
            Tensor Slice(Tensor t, long offset, long rows) => rows < 0 ? t : t.narrow(0, offset, rows);
            using (torch.no_grad())
                foreach (var (name, target, offset, rows) in map)
                    Slice(reference[target], offset, rows).copy_(p[l + name]);

            long batch = 2, time = a.ImageSize / a.PatchSize * (a.ImageSize / a.PatchSize) + 1;
            using var generator = new Generator(322);
            var x = torch.randn(new[] { batch, time, hidden }, dtype, generator: generator).requires_grad_();
            var r = torch.randn(new[] { batch, time, hidden }, dtype, generator: generator);
            var xr = x.detach().clone().requires_grad_();

            var y = generated(x);
            (y * r).sum().backward();
            // libtorch's MultiheadAttention is sequence-first [T, B, E]; no mask: every position sees every position.
            var h = ln1.call(xr).transpose(0, 1);
            var yr = xr + mha.call(h, h, h, null, false, null).Item1.transpose(0, 1);
            yr = yr + linear2.call(nn.functional.gelu(linear1.call(ln2.call(yr))));
            (yr * r).sum().backward();

            Numerics.AssertClose(y, yr, atol, rtol, $"{kind} {dtype} encoder layer: output", log);
            Numerics.AssertClose(x.grad, xr.grad, atol, rtol, $"{kind} {dtype} encoder layer: d(out.R)/dx", log);
            foreach (var (name, target, offset, rows) in map)
            {
                var expected = reference[target].grad;
                Assert.True(expected is not null, $"no gradient reached the reference's {target}");
                Numerics.AssertClose(p[l + name].grad, Slice(expected!, offset, rows), atol, rtol, $"{kind} {dtype} dL/d{name}");
            }
        }

        // ------------------------------------------------------------------------------------------------------
        // 3. Whole models vs a forward pass written from elementary ops
        // ------------------------------------------------------------------------------------------------------

        /// <summary>
        /// Logits [B, Classes] from elementary ops on the model's own parameter tensors: patches cut with view/permute
        /// (row-major patches, each flattened channel-major) times the projection flattened to [Hidden, C*P*P]; the
        /// class token in front; the position table added; pre-norm layers with norms as (x - mean) / sqrt(var + eps),
        /// softmax as exp(s - max) / sum without a mask, GELU as 0.5 x (1 + erf(x / sqrt 2)); the final norm; the
        /// classifier on position 0.
        /// </summary>
        internal static Tensor ReferenceLogits(IReadOnlyDictionary<string, Tensor> p, Architecture a, Tensor pixels)
        {
            long batch = pixels.shape[0], grid = a.ImageSize / a.PatchSize, hidden = a.Hidden, headDim = hidden / a.Heads;
            long time = grid * grid + 1;
            var patches = pixels.view(batch, a.Channels, grid, a.PatchSize, grid, a.PatchSize)
                                .permute(0, 2, 4, 1, 3, 5)                                   // [B, row, col, C, P, P]
                                .reshape(batch, grid * grid, a.Channels * a.PatchSize * a.PatchSize);
            var projection = p["vit.embeddings.patch_embeddings.projection.weight"].reshape(hidden, -1);
            var x = patches.matmul(projection.t()) + p["vit.embeddings.patch_embeddings.projection.bias"];
            x = torch.cat(new[] { p["vit.embeddings.cls_token"].expand(batch, 1, hidden), x }, 1) + p["vit.embeddings.position_embeddings"];

            Tensor Norm(Tensor v, string name)
            {
                var centred = v - v.mean(new long[] { -1 }, keepdim: true);
                var variance = (centred * centred).mean(new long[] { -1 }, keepdim: true);
                return centred / (variance + a.Epsilon).sqrt() * p[name + ".weight"] + p[name + ".bias"];
            }
            Tensor Linear(Tensor v, string name) => v.matmul(p[name + ".weight"].t()) + p[name + ".bias"];
            Tensor Heads(Tensor v) => v.view(batch, time, a.Heads, headDim).permute(0, 2, 1, 3); // [B, H, T, D]
            for (int layer = 0; layer < a.Layers; layer++)
            {
                string l = $"vit.encoder.layer.{layer}.";
                var h = Norm(x, l + "layernorm_before");
                var q = Heads(Linear(h, l + "attention.attention.query"));
                var k = Heads(Linear(h, l + "attention.attention.key"));
                var v = Heads(Linear(h, l + "attention.attention.value"));
                var scores = q.matmul(k.transpose(-2, -1)) / Math.Sqrt(headDim);
                var e = (scores - scores.amax(new long[] { -1 }, keepdim: true)).exp();
                var y = (e / e.sum(-1, keepdim: true)).matmul(v).permute(0, 2, 1, 3).reshape(batch, time, hidden);
                x = x + Linear(y, l + "attention.output.dense");
                var u = Linear(Norm(x, l + "layernorm_after"), l + "intermediate.dense");
                x = x + Linear(0.5 * u * (1 + (u / Math.Sqrt(2)).erf()), l + "output.dense");
            }
            return Linear(Norm(x, "vit.layernorm").select(1, 0), "classifier");
        }

        [Theory]
        [InlineData(nameof(TinyVit), ScalarType.Float64)]
        [InlineData(nameof(TinyVit), ScalarType.Float32)]
        [InlineData(nameof(TinyRgbVit), ScalarType.Float64)]
        [InlineData(nameof(TinyRgbVit), ScalarType.Float32)]
        public void Model_logits_loss_and_gradients_match_an_elementary_reference(string kind, ScalarType dtype)
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            var (model, a) = Create(kind);
            model.to(dtype);
            Numerics.Randomize(model, 331);
            model.eval();
            var p = Numerics.Parameters(model);
            var pixels = RandomImages(4, a, dtype, 332);
            var labels = torch.tensor(new long[] { 0, a.Classes - 1, 2, 1 });

            var logits = model.Forward(pixels).Logits;
            Assert.Equal(new long[] { 4, a.Classes }, logits.shape);
            Numerics.AssertClose(logits, ReferenceLogits(p, a, pixels), atol, rtol, $"{kind} {dtype} logits", log);

            model.zero_grad();
            var loss = model.Loss(pixels, labels);
            loss.backward();
            var grads = model.named_parameters().ToDictionary(q => q.Item1, q => q.Item2.grad!.clone());
            model.zero_grad();
            var expectedLoss = GeneratedGptNumericsTests.ReferenceLoss(ReferenceLogits(p, a, pixels), labels);
            expectedLoss.backward();

            Numerics.AssertClose(loss, expectedLoss, atol, rtol, $"{kind} {dtype} loss", log);
            double worst = 0;
            foreach (var (name, parameter) in model.named_parameters())
            {
                Assert.True(grads[name].abs().max().to(ScalarType.Float64).item<double>() > 0, $"{name} gets no gradient");
                worst = Math.Max(worst, Numerics.AssertClose(grads[name], parameter.grad, atol, rtol, $"{kind} {dtype} dLoss/d{name}"));
            }
            log.WriteLine($"{kind} {dtype} parameter gradients ({grads.Count} tensors): max |diff| = {worst:E2}");
        }

        [Fact]
        public void Dropout_is_active_in_training_mode_and_off_in_eval_mode()
        {
            using var scope = torch.NewDisposeScope();
            var model = TinyRgbVit.CreateTorchSharp();
            model.to(ScalarType.Float64);
            Numerics.Randomize(model, 341);
            var pixels = RandomImages(4, TinyRgbVitArchitecture, ScalarType.Float64, 342);
            model.train();
            double trainingDifference = (model.Forward(pixels).Logits - model.Forward(pixels).Logits).abs().max().item<double>();
            model.eval();
            var evaluated = model.Forward(pixels).Logits;
            log.WriteLine($"two training-mode forwards differ by {trainingDifference:E2}");
            Assert.True(trainingDifference > 1e-3, "dropout 0.1 should change the logits in training mode");
            Assert.True(Numerics.Identical(evaluated, model.Forward(pixels).Logits), "eval mode is deterministic");
            Numerics.AssertClose(evaluated, ReferenceLogits(Numerics.Parameters(model), TinyRgbVitArchitecture, pixels), 1e-10, 1e-10, "eval logits vs reference without dropout", log);
        }

        // ------------------------------------------------------------------------------------------------------
        // 4. Finite differences for the parameters only ViT has
        // ------------------------------------------------------------------------------------------------------

        /// <summary>
        /// Autograd's dLoss/dθ against central differences with ε = 1e-6 in float64, 4 seeded entries each of the
        /// patch projection, the class token, the position table and the classifier. Bound as for GPT: 1e-5 |g| + 1e-8.
        /// </summary>
        [Fact]
        public void Loss_gradient_matches_central_finite_differences()
        {
            using var scope = torch.NewDisposeScope();
            var model = TinyVit.CreateTorchSharp();
            model.to(ScalarType.Float64);
            Numerics.Randomize(model, 351);
            model.eval();
            var pixels = RandomImages(3, TinyVitArchitecture, ScalarType.Float64, 352);
            var labels = torch.tensor(new long[] { 3, 7, 0 });
            var p = Numerics.Parameters(model);
            model.zero_grad();
            model.Loss(pixels, labels).backward();

            double Loss()
            {
                using var inner = torch.NewDisposeScope();
                using var noGrad = torch.no_grad();
                return model.Loss(pixels, labels).item<double>();
            }
            var names = new[] { "vit.embeddings.patch_embeddings.projection.weight", "vit.embeddings.patch_embeddings.projection.bias",
                                "vit.embeddings.cls_token", "vit.embeddings.position_embeddings", "classifier.weight" };
            var (worstAbsolute, _) = Numerics.AssertFiniteDifferences(p, names, samples: 4, new Random(353), Loss);
            log.WriteLine($"finite differences (20 entries): max |diff| = {worstAbsolute:E2}");
        }

        // ------------------------------------------------------------------------------------------------------
        // 5. Bad input
        // ------------------------------------------------------------------------------------------------------

        [Fact]
        public void Bad_images_and_labels_are_refused_with_the_model_tensor_and_dimension()
        {
            using var scope = torch.NewDisposeScope();
            var model = TinyVit.CreateTorchSharp();
            model.eval();
            var labels = torch.tensor(new long[] { 1, 2 });
            void Refused(Func<object> call, params string[] parts)
            {
                var e = Assert.ThrowsAny<ArgumentException>(call);
                log.WriteLine(e.Message);
                foreach (var part in new[] { "Model 'TinyVit'" }.Concat(parts)) Assert.Contains(part, e.Message, StringComparison.Ordinal);
            }

            Refused(() => model.Forward(torch.zeros(2, 3, 16, 16)), "images", "dimension 1 (channels) is 3", "[batch, 1, 16, 16]");
            Refused(() => model.Forward(torch.zeros(2, 1, 28, 28)), "images", "dimension 2 (height) is 28", "[batch, 1, 16, 16]");
            Refused(() => model.Forward(torch.zeros(2, 1, 16, 15)), "images", "dimension 3 (width) is 15");
            Refused(() => model.Forward(torch.zeros(2, 16, 16)), "images", "3 dimension(s) [2, 16, 16]", "[batch, 1, 16, 16]");
            Refused(() => model.Forward(torch.zeros(0, 1, 16, 16)), "images", "dimension 0 (batch) is 0");
            Refused(() => model.Forward(torch.zeros(new long[] { 2, 1, 16, 16 }, ScalarType.Byte)), "images", "floating point", "Byte");
            Refused(() => model.Loss(torch.zeros(2, 1, 16, 16), torch.tensor(new[] { 1, 2 })), "labels", "int64", "Int32");
            Refused(() => model.Loss(torch.zeros(2, 1, 16, 16), torch.tensor(new long[] { 1, 2, 3 })), "labels", "[2]");
            Refused(() => model.Loss(torch.zeros(2, 1, 16, 16), torch.tensor(new long[] { 1, 10 })), "labels", "[0, 10)");
            Refused(() => model.Loss(torch.zeros(3, 1, 16, 16), labels), "labels", "[3]");
            Assert.Throws<ArgumentNullException>(() => model.Forward(null!));
        }
    }
}
