using System.Linq;
using System.Threading.Tasks;
using ModelDsl.Generators.Emit;
using ModelDsl.Generators.Ir;
using ModelDsl.Generators.Ir.Families;
using ModelDsl.Generators.Parsing;
using Xunit;
using static ModelDsl.Analyzers.Tests.Infrastructure.AnalyzerVerifier;

namespace ModelDsl.Analyzers.Tests
{
    /// <summary>
    /// MDSL0100: what a referenced backend cannot generate, from the op kinds (and tasks) it implements. The TorchSharp
    /// backend now implements them all; the gaps are checked with a backend that implements fewer.
    /// </summary>
    public sealed class BackendDiagnosticTests
    {
        private static ModelGraph Graph(string declaration)
        {
            var compilation = Infrastructure.TestCompilation.Create("using ModelDsl;\n" + declaration);
            return TransformerGraph.Build(ModelParser.Parse(compilation.GetTypeByMetadataName("M")!, default));
        }

        private static readonly OpKind[] Gpt2Kinds =
        {
            OpKind.Embedding, OpKind.LearnedPositions, OpKind.Add, OpKind.Norm, OpKind.Linear, OpKind.Activation,
            OpKind.Split, OpKind.Attention, OpKind.Dropout, OpKind.CrossEntropy, OpKind.Call, OpKind.Repeat,
        };

        [Fact]
        public void A_backend_reports_each_missing_op_kind_once_at_the_attribute_that_asked_for_it()
        {
            var graph = Graph("""
                [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
                [FeedForward(Activation = Activation.SwiGlu, Bias = false)]
                [RotaryPositions, MixtureOfExperts(Experts = 4, Every = 2), Lora]
                public partial record M;
                """);
            var gaps = BackendSupport.Gaps(graph, "Test", Gpt2Kinds, new[] { ModelTask.CausalLanguageModel })
                .Select(f => $"{f.Site.Attribute}.{f.Site.Argument}: {f.Message}").OrderBy(s => s, System.StringComparer.Ordinal).ToList();
            Assert.Equal(new[]
            {
                "FeedForward.Activation: The Test backend does not generate gated feed-forward layers yet, so 'M' gets no Test code; the declaration itself is valid",
                "Lora.: The Test backend does not generate LoRA adapters yet, so 'M' gets no Test code; the declaration itself is valid",
                "MixtureOfExperts.: The Test backend does not generate mixture-of-experts layers yet, so 'M' gets no Test code; the declaration itself is valid",
                "RotaryPositions.: The Test backend does not generate rotary positions yet, so 'M' gets no Test code; the declaration itself is valid",
            }, gaps);
        }

        [Fact]
        public void A_backend_without_the_tasks_base_reports_the_family()
        {
            var graph = Graph("[Encoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)] public partial record M;");
            var gap = Assert.Single(BackendSupport.Gaps(graph, "Test", Gpt2Kinds, new[] { ModelTask.CausalLanguageModel }));
            Assert.Equal("Encoder", gap.Site.Attribute);
            Assert.Contains("masked language models", gap.Message);
        }

        [Theory]
        [InlineData("[Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2), Attention(KvHeads = 2, Window = 16, Bias = false), FeedForward(Activation = Activation.SwiGlu, Bias = false), RotaryPositions, PreNorm(Kind = NormKind.RmsNorm), MixtureOfExperts(Experts = 4), Lora]")]
        [InlineData("[Encoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2), SegmentEmbeddings, ClassificationHead(Classes = 3)]")]
        [InlineData("[EncoderDecoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, EncoderLayers = 2, DecoderLayers = 2), TiedEmbeddings]")]
        [InlineData("[VisionEncoder(ImageSize = 32, PatchSize = 8, Channels = 3, Hidden = 64, Heads = 4, Layers = 2, Classes = 10)]")]
        public Task The_TorchSharp_backend_generates_every_family_and_variant(string attributes) => VerifyAsync(
            attributes + "\npublic partial record M;", torchSharp: true);

        [Theory]
        [InlineData("[Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2), FeedForward(Activation = Activation.GeluTanh), LearnedPositions, PreNorm, TiedEmbeddings]")]
        [InlineData("[Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2), Attention(KvHeads = 2, Window = 16, Bias = false), FeedForward(Activation = Activation.SwiGlu, Bias = false), RotaryPositions, PreNorm(Kind = NormKind.RmsNorm)]")]
        [InlineData("[Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2), FeedForward(Activation = Activation.Relu), SinusoidalPositions, PostNorm]")]
        [InlineData("[Encoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2), SegmentEmbeddings, PostNorm(Epsilon = 1e-12), TiedEmbeddings, Dropout(0.1)]")]
        [InlineData("[Encoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2), PreNorm, ClassificationHead(Classes = 3)]")]
        [InlineData("[VisionEncoder(ImageSize = 32, PatchSize = 8, Channels = 3, Hidden = 64, Heads = 4, Layers = 2, Classes = 10)]")]
        [InlineData("[EncoderDecoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, EncoderLayers = 2, DecoderLayers = 2), Attention(HeadDim = 8, Bias = false), RelativePositions, TiedEmbeddings]")]
        [InlineData("[Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2), Attention(KvHeads = 2, Bias = false), FeedForward(Activation = Activation.SwiGlu, Bias = false), RotaryPositions, PreNorm(Kind = NormKind.RmsNorm), MixtureOfExperts(Experts = 8, TopK = 2, ZLossWeight = 0.001)]")]
        [InlineData("[Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2), FeedForward(Activation = Activation.GeluTanh), LearnedPositions, PreNorm, TiedEmbeddings, MixtureOfExperts(Experts = 4, TopK = 1)]")]
        [InlineData("[Encoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2), PostNorm(Epsilon = 1e-12), TiedEmbeddings, MixtureOfExperts(Experts = 4, TopK = 2)]")]
        [InlineData("[EncoderDecoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, EncoderLayers = 2, DecoderLayers = 2), Attention(HeadDim = 8, Bias = false), RelativePositions, TiedEmbeddings, MixtureOfExperts(Experts = 4, TopK = 1)]")]
        [InlineData("[Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2), FeedForward(Activation = Activation.GeluTanh), LearnedPositions, PreNorm, TiedEmbeddings, Lora(Rank = 8, Alpha = 16, Targets = LoraTargets.Query | LoraTargets.Value | LoraTargets.FeedForward)]")]
        [InlineData("[EncoderDecoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, EncoderLayers = 2, DecoderLayers = 2), Attention(HeadDim = 8, Bias = false), RelativePositions, TiedEmbeddings, Lora(Targets = LoraTargets.Query | LoraTargets.Key | LoraTargets.Value | LoraTargets.Output)]")]
        [InlineData("[Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 4), FeedForward(Activation = Activation.Relu), MixtureOfExperts(Experts = 4, TopK = 1, Every = 2)]")]
        [InlineData("[EncoderDecoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, EncoderLayers = 4, DecoderLayers = 2), Attention(HeadDim = 8, Bias = false), RelativePositions, TiedEmbeddings, MixtureOfExperts(Experts = 4, TopK = 1, Every = 2)]")]
        public Task The_ILGPU_backend_generates_decoders_BERT_ViT_T5_mixtures_of_experts_and_LoRA(string attributes) => VerifyAsync(
            attributes + "\npublic partial record M;", torchSharp: true, ilgpu: true);

        [Fact]
        public Task MDSL0100_is_not_reported_for_an_invalid_declaration() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = {|MDSL0005:0|})]
            [RotaryPositions]
            public partial record M;
            """, torchSharp: true);
    }
}
