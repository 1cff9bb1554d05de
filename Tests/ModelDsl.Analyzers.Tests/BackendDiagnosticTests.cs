using System.Threading.Tasks;
using Xunit;
using static ModelDsl.Analyzers.Tests.Infrastructure.AnalyzerVerifier;

namespace ModelDsl.Analyzers.Tests
{
    /// <summary>MDSL0100: what the referenced TorchSharp backend cannot generate yet, reported only when it is referenced.</summary>
    public sealed class BackendDiagnosticTests
    {
        [Fact]
        public Task MDSL0100_rotary_positions_are_reported_on_the_attribute_when_torchsharp_is_referenced() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            [{|MDSL0100:RotaryPositions|}]
            public partial record M;
            """, torchSharp: true);

        [Fact]
        public Task MDSL0100_each_op_kind_the_backend_lacks_is_reported_at_the_attribute_that_asked_for_it() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            [FeedForward(Activation = {|MDSL0100:Activation.SwiGlu|}, Bias = false)]
            [{|MDSL0100:MixtureOfExperts(Experts = 4, Every = 2)|}, {|MDSL0100:Lora|}]
            public partial record M;
            """, torchSharp: true);

        [Fact]
        public Task MDSL0100_passes_for_grouped_query_sliding_window_rms_norm_and_bias_free_layers() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            [Attention(KvHeads = 2, Window = 16, Bias = false)]
            [FeedForward(Bias = false)]
            [PreNorm(Kind = NormKind.RmsNorm)]
            public partial record M;
            """, torchSharp: true);

        [Fact]
        public Task MDSL0100_a_family_without_a_torchsharp_emitter_is_reported_on_the_family() => VerifyAsync("""
            [{|MDSL0100:Encoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)|}]
            public partial record B;
            """, torchSharp: true);

        [Fact]
        public Task MDSL0100_is_not_reported_without_the_torchsharp_runtime() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            [RotaryPositions]
            public partial record M;
            """);

        [Fact]
        public Task MDSL0100_is_not_reported_for_an_invalid_declaration() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = {|MDSL0005:0|})]
            [RotaryPositions]
            public partial record M;
            """, torchSharp: true);

        [Fact]
        public Task MDSL0100_passes_for_a_gpt2_style_decoder() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            [FeedForward(Inner = 512, Activation = Activation.GeluTanh)]
            [LearnedPositions, PreNorm(Epsilon = 1e-5), TiedEmbeddings, Dropout(0.1)]
            public partial record M;
            """, torchSharp: true);
    }
}
