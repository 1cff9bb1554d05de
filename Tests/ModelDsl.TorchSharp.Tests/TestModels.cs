using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using ModelDsl;
using ModelDsl.Checkpoints;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    // Small declarations for the numerics tests: the generator emits each one's TorchSharp module in this project,
    // exactly as it does for a user's model. Sizes are tiny so that float64 references and finite differences run in
    // milliseconds; Heads = 4 with HeadDim = 8 still exercises the head split/merge.

    /// <summary>GPT-2's layout (learned positions, pre-norm, GELU-tanh, tied head) at toy size.</summary>
    [Decoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 2)]
    [FeedForward(Inner = 64, Activation = Activation.GeluTanh)]
    [LearnedPositions, PreNorm, TiedEmbeddings]
    public partial record TinyGpt;

    /// <summary>Post-norm with exact GELU and eps 1e-5: the block libtorch's TransformerEncoderLayer computes.</summary>
    [Decoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 2)]
    [FeedForward(Inner = 64, Activation = Activation.Gelu)]
    [LearnedPositions, PostNorm(Epsilon = 1e-5), TiedEmbeddings]
    public partial record TinyPostNormGpt;

    /// <summary>Pre-norm, ReLU, an untied LM head and a non-default epsilon.</summary>
    [Decoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 2)]
    [FeedForward(Inner = 64, Activation = Activation.Relu)]
    [LearnedPositions, PreNorm(Epsilon = 1e-6)]
    public partial record TinyUntiedReluGpt;

    /// <summary>With dropout 0.1: eval mode must make it deterministic and equal to the same weights without dropout.</summary>
    [Decoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 2)]
    [FeedForward(Inner = 64, Activation = Activation.Relu)]
    [LearnedPositions, PreNorm, TiedEmbeddings, Dropout(0.1)]
    public partial record TinyDropoutGpt;

    /// <summary>The short training run's model: a character-level GPT small enough to take 150 steps in seconds.</summary>
    [Decoder(Vocab = 64, Context = 32, Hidden = 64, Heads = 4, Layers = 2)]
    [FeedForward(Inner = 256, Activation = Activation.GeluTanh)]
    [LearnedPositions, PreNorm, TiedEmbeddings]
    public partial record TrainGpt;

    /// <summary>TrainGpt's size in Mistral's layout: rotary positions, GQA (2 key/value heads), a window of 16, SwiGLU, RMSNorm, no biases.</summary>
    [Decoder(Vocab = 64, Context = 32, Hidden = 64, Heads = 4, Layers = 2)]
    [Attention(KvHeads = 2, Window = 16, Bias = false)]
    [FeedForward(Inner = 176, Activation = Activation.SwiGlu, Bias = false)]
    [RotaryPositions, PreNorm(Kind = NormKind.RmsNorm, Epsilon = 1e-6)]
    public partial record TrainMistral;

    /// <summary>TrainMistral with Mixtral's sparse feed-forward: 4 experts of half the width, top-2, in every layer.</summary>
    [Decoder(Vocab = 64, Context = 32, Hidden = 64, Heads = 4, Layers = 2)]
    [Attention(KvHeads = 2, Bias = false)]
    [FeedForward(Inner = 88, Activation = Activation.SwiGlu, Bias = false)]
    [RotaryPositions, PreNorm(Kind = NormKind.RmsNorm, Epsilon = 1e-6)]
    [MixtureOfExperts(Experts = 4, TopK = 2)]
    public partial record TrainMixtral;

    /// <summary>TrainGpt with rank-4 LoRA adapters on its attention and MLP: a TrainGpt checkpoint is its base.</summary>
    [Decoder(Vocab = 64, Context = 32, Hidden = 64, Heads = 4, Layers = 2)]
    [FeedForward(Inner = 256, Activation = Activation.GeluTanh)]
    [LearnedPositions, PreNorm, TiedEmbeddings]
    [Lora(Rank = 4, Alpha = 8, Targets = LoraTargets.Query | LoraTargets.Value | LoraTargets.FeedForward)]
    public partial record TrainLoraGpt;

    /// <summary>A causal language model written by hand for runtime tests (trainer, sampler), with a minimal card.</summary>
    public abstract class HandWrittenLanguageModel : CausalLanguageModel
    {
        protected HandWrittenLanguageModel(ModelCard card) : base(card) { }

        public static ModelCard CardFor(string name, int vocab, int context, int hidden, long parameters)
            => new(name, "Decoder", "none", "CausalLanguageModel", vocab, context, hidden, heads: 1, kvHeads: 1, headDim: hidden,
                encoderLayers: 0, decoderLayers: 1, inner: 0, classes: 0, segmentTypes: 0, imageSize: 0, patchSize: 0, channels: 0,
                experts: 0, topK: 0, parameterCount: parameters, forwardFlops: Array.Empty<CostTerm>(), activationBytes: Array.Empty<CostTerm>());

        protected override CheckpointNames CheckpointNames { get; } = new("none", null, Array.Empty<string>(), Array.Empty<(string, string)>());

        public override void ResetParameters() { }

        protected override Tensor TaskLoss(Tensor logits, Tensor targets) => CrossEntropy(logits, targets);
    }

    /// <summary>Shared helpers of the numerics tests: reproducible non-trivial weights and tolerance checks that report.</summary>
    internal static class Numerics
    {
        /// <summary>
        /// Overwrites every parameter with seeded random values far from GPT-2's initialisation, so that no path
        /// hides behind a zero bias, a unit gain or near-uniform attention: norm gains N(1, 0.2), biases N(0, 0.1),
        /// embeddings and an untied head N(0, 0.5), Conv1D weights [in, out] N(0, 1.5 / sqrt(in)) (queries and keys
        /// of O(1.5) per component, so the softmax is neither uniform nor one-hot).
        /// </summary>
        public static void Randomize(nn.Module model, ulong seed)
        {
            using var generator = new Generator(seed);
            using var _ = torch.no_grad();
            foreach (var (name, p) in model.named_parameters())
            {
                if (p.dim() == 1)
                {
                    bool gain = name.EndsWith(".weight", StringComparison.Ordinal);
                    p.normal_(gain ? 1.0 : 0.0, gain ? 0.2 : 0.1, generator);
                }
                else if (name.Contains("wte") || name.Contains("wpe") || name.Contains("embed") || name.Contains("lm_head"))
                    p.normal_(0.0, 0.5, generator);
                else
                    p.normal_(0.0, 1.5 / Math.Sqrt(p.shape[0]), generator);
            }
        }

        /// <summary>Parameters by name (the model's own tensors: gradients of anything built from them reach them).</summary>
        public static Dictionary<string, Tensor> Parameters(nn.Module module)
            => module.named_parameters().ToDictionary(p => p.Item1, p => (Tensor)p.Item2);

        /// <summary>
        /// Asserts |actual - expected| &lt;= atol + rtol max|expected| for every element and logs the measured maximum
        /// error; returns it. The relative part is taken against the tensor's largest magnitude, not each element's:
        /// an entry of a gradient is a sum of many terms that may cancel, and its rounding error scales with those
        /// terms, not with the (possibly tiny) sum.
        /// </summary>
        public static double AssertClose(Tensor? actual, Tensor? expected, double atol, double rtol, string what, ITestOutputHelper? log = null)
        {
            Assert.True(actual is not null, $"{what}: actual is null");
            Assert.True(expected is not null, $"{what}: expected is null");
            Assert.True(actual!.shape.SequenceEqual(expected!.shape),
                $"{what}: shape [{string.Join(", ", actual.shape)}] vs expected [{string.Join(", ", expected.shape)}]");
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            var a = actual.detach().to(ScalarType.Float64);
            var e = expected.detach().to(ScalarType.Float64);
            Assert.False(a.isnan().any().item<bool>() || e.isnan().any().item<bool>(), $"{what}: NaN");
            var diff = (a - e).abs();
            double maxAbs = diff.max().item<double>();
            double scale = e.abs().max().item<double>();
            var excess = diff - (atol + rtol * scale);
            long worst = excess.flatten().argmax().item<long>();
            double worstExcess = excess.flatten()[worst].item<double>();
            string report = string.Format(CultureInfo.InvariantCulture,
                "{0}: max |diff| = {1:E2} (max |ref| = {2:E2}; tolerance {3:E0} + {4:E0} max|ref|)", what, maxAbs, scale, atol, rtol);
            log?.WriteLine(report);
            if (worstExcess > 0)
                Assert.Fail(string.Format(CultureInfo.InvariantCulture, "{0}; worst at flat index {1}: {2:R} vs {3:R}",
                    report, worst, a.flatten()[worst].item<double>(), e.flatten()[worst].item<double>()));
            return maxAbs;
        }

        /// <summary>Same shape and every element equal (exact; the tensors hold no NaN).</summary>
        public static bool Identical(Tensor a, Tensor b)
        {
            using var scope = torch.NewDisposeScope();
            return a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();
        }

        /// <summary>Float -inf above the diagonal: the additive causal mask libtorch's MultiheadAttention expects.</summary>
        public static Tensor AdditiveCausalMask(long time, ScalarType dtype)
            => torch.full(time, time, double.NegativeInfinity, dtype).triu(1);

        /// <summary>Seeded token ids [batch, time] in [0, vocab).</summary>
        /// <summary>
        /// Autograd's gradient (already in each parameter's .grad) against central differences (L(θ + ε) - L(θ - ε)) / 2ε,
        /// ε = 1e-6, in float64, at <paramref name="samples"/> seeded entries of each named parameter. Truncation error is
        /// O(ε² L''') ≈ 1e-12 and rounding about ulp(L) / ε ≈ 1e-9, so the bound is 1e-5 |g| + 1e-8. Returns the largest
        /// absolute and relative differences.
        /// </summary>
        public static (double Absolute, double Relative) AssertFiniteDifferences(
            IReadOnlyDictionary<string, Tensor> parameters, IEnumerable<string> names, int samples, Random random, Func<double> loss)
        {
            const double eps = 1e-6, rtol = 1e-5, atol = 1e-8;
            double worstAbsolute = 0, worstRelative = 0;
            foreach (var name in names)
            {
                var flat = parameters[name].view(-1);
                var grad = parameters[name].grad!.view(-1);
                for (int sample = 0; sample < samples; sample++)
                {
                    long i = random.NextInt64(flat.shape[0]);
                    double original = flat[i].item<double>();
                    using (torch.no_grad()) flat[i] = original + eps;
                    double plus = loss();
                    using (torch.no_grad()) flat[i] = original - eps;
                    double minus = loss();
                    using (torch.no_grad()) flat[i] = original;
                    double numeric = (plus - minus) / (2 * eps), analytic = grad[i].item<double>();
                    double error = Math.Abs(numeric - analytic);
                    worstAbsolute = Math.Max(worstAbsolute, error);
                    worstRelative = Math.Max(worstRelative, error / Math.Max(Math.Abs(analytic), 1e-12));
                    Assert.True(error <= rtol * Math.Abs(analytic) + atol,
                        string.Format(CultureInfo.InvariantCulture, "{0}[{1}]: autograd {2:R}, central difference {3:R} (|diff| {4:E2})", name, i, analytic, numeric, error));
                }
            }
            return (worstAbsolute, worstRelative);
        }

        public static Tensor RandomIds(long batch, long time, long vocab, ulong seed)
        {
            using var generator = new Generator(seed);
            return torch.randint(vocab, new[] { batch, time }, ScalarType.Int64, generator: generator);
        }
    }
}

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>
    /// A Mistral-shaped decoder without rotary positions: grouped-query attention (2 key/value heads for 4 query heads),
    /// a sliding window of 5, RMSNorm, no biases, an untied head. RMSNorm gives it the Llama family's names, the window makes it Mistral.
    /// </summary>
    [Decoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 2)]
    [Attention(KvHeads = 2, Window = 5, Bias = false)]
    [FeedForward(Inner = 64, Activation = Activation.Relu, Bias = false)]
    [LearnedPositions, PreNorm(Kind = NormKind.RmsNorm, Epsilon = 1e-6)]
    public partial record TinyWindowGqaDecoder;
}

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>BERT's layout at toy size: segments, post-norm (eps 1e-5, as libtorch's TransformerEncoderLayer), tied MLM head.</summary>
    [Encoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 2)]
    [FeedForward(Inner = 64)]
    [SegmentEmbeddings, PostNorm(Epsilon = 1e-5), TiedEmbeddings]
    public partial record TinyBert;

    /// <summary>The same encoder with BERT's pooler and a 3-class classifier.</summary>
    [Encoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 2)]
    [FeedForward(Inner = 64)]
    [SegmentEmbeddings, PostNorm(Epsilon = 1e-5), ClassificationHead(Classes = 3)]
    public partial record TinyBertClassifier;

    /// <summary>The short MLM training run's model: a character-level BERT over 4 special tokens and the KJV's 62 characters.</summary>
    [Encoder(Vocab = 66, Context = 64, Hidden = 64, Heads = 4, Layers = 2)]
    [FeedForward(Inner = 256)]
    [SegmentEmbeddings, PostNorm(Epsilon = 1e-12), TiedEmbeddings]
    public partial record TrainBert;

    /// <summary>T5 v1.1's layout at toy size: d_kv 16 (Heads x HeadDim = 64, not Hidden), gated GELU, relative buckets, untied head.</summary>
    [EncoderDecoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, EncoderLayers = 2, DecoderLayers = 2)]
    [Attention(HeadDim = 16, Bias = false)]
    [FeedForward(Inner = 64, Activation = Activation.GeGlu, Bias = false)]
    [RelativePositions(Buckets = 8, MaxDistance = 16)]
    public partial record TinyT5;

    /// <summary>T5 v1.0: ReLU, tied head (rescaled by Hidden^-0.5).</summary>
    [EncoderDecoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, EncoderLayers = 1, DecoderLayers = 2)]
    [Attention(Bias = false)]
    [FeedForward(Inner = 64, Activation = Activation.Relu, Bias = false)]
    [RelativePositions(Buckets = 8, MaxDistance = 16), TiedEmbeddings]
    public partial record TinyTiedT5;

    /// <summary>ViT's layout at toy size: 16 x 16 greyscale images in 4 x 4 patches.</summary>
    [VisionEncoder(ImageSize = 16, PatchSize = 4, Channels = 1, Hidden = 32, Heads = 4, Layers = 2, Classes = 10)]
    [FeedForward(Inner = 64)]
    [PreNorm(Epsilon = 1e-6)]
    public partial record TinyVit;

    /// <summary>Llama's layout at toy size: rotary positions, GQA, SwiGLU, RMSNorm, no biases.</summary>
    [Decoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 2)]
    [Attention(KvHeads = 2, Bias = false)]
    [FeedForward(Inner = 48, Activation = Activation.SwiGlu, Bias = false)]
    [RotaryPositions(Base = 500), PreNorm(Kind = NormKind.RmsNorm, Epsilon = 1e-6)]
    public partial record TinyLlama;

    /// <summary>Mixtral's routing on a GPT-2 body: 4 experts, top-2, every layer.</summary>
    [Decoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 2)]
    [FeedForward(Inner = 64, Activation = Activation.GeluTanh)]
    [LearnedPositions, PreNorm, TiedEmbeddings]
    [MixtureOfExperts(Experts = 4, TopK = 2, ZLossWeight = 0.001)]
    public partial record TinyMoeGpt;

    /// <summary>Switch routing: top-1 in every second layer (layers 1 and 3; 0 and 2 are dense).</summary>
    [Decoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 4)]
    [FeedForward(Inner = 64, Activation = Activation.Relu)]
    [LearnedPositions, PreNorm, TiedEmbeddings]
    [MixtureOfExperts(Experts = 4, TopK = 1, Every = 2)]
    public partial record TinySwitchGpt;

    /// <summary>Mixtral's layout at toy size: gated SiLU experts (w1, w3, w2) under block_sparse_moe, top-2 of 4.</summary>
    [Decoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 2)]
    [Attention(KvHeads = 2, Bias = false)]
    [FeedForward(Inner = 48, Activation = Activation.SwiGlu, Bias = false)]
    [RotaryPositions(Base = 500), PreNorm(Kind = NormKind.RmsNorm, Epsilon = 1e-6)]
    [MixtureOfExperts(Experts = 4, TopK = 2)]
    public partial record TinyMixtral;

    /// <summary>LoRA on the fused attention projection and the feed-forward of a GPT-2-shaped model.</summary>
    [Decoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 2)]
    [FeedForward(Inner = 64, Activation = Activation.GeluTanh)]
    [LearnedPositions, PreNorm, TiedEmbeddings]
    [Lora(Rank = 4, Alpha = 8, Targets = LoraTargets.Query | LoraTargets.Value | LoraTargets.FeedForward)]
    public partial record TinyLoraGpt;
}
