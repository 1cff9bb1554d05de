using System.Threading.Tasks;
using Xunit;
using static ModelDsl.Analyzers.Tests.Infrastructure.AnalyzerVerifier;

namespace ModelDsl.Analyzers.Tests
{
    /// <summary>Declaration rules: missing or misplaced attributes, conflicts and the shape of the type itself.</summary>
    public sealed class DeclarationDiagnosticTests
    {
        [Fact]
        public Task MDSL0004_a_missing_dimension_is_reported_on_the_family_attribute() => VerifyAsync("""
            [{|MDSL0004:Decoder(Vocab = 100, Hidden = 128, Heads = 4, Layers = 2)|}]
            public partial record M;
            """);

        [Fact]
        public Task MDSL0004_each_missing_dimension_is_reported_once() => VerifyAsync("""
            [{|MDSL0004,MDSL0004:EncoderDecoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4)|}]
            public partial record T;
            """);

        [Fact]
        public Task MDSL0004_a_classification_head_without_classes_is_reported_on_the_head() => VerifyAsync("""
            [Encoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)]
            [{|MDSL0004:ClassificationHead|}]
            public partial record B;
            """);

        [Fact]
        public Task MDSL0004_experts_without_a_count_are_reported_on_the_attribute() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            [{|MDSL0004:MixtureOfExperts(TopK = 1)|}]
            public partial record M;
            """);

        [Fact]
        public Task MDSL0004_passes_when_every_dimension_is_written() => VerifyAsync("""
            [EncoderDecoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, EncoderLayers = 2, DecoderLayers = 2)]
            public partial record T;

            [Encoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)]
            [ClassificationHead(Classes = 2)]
            public partial record B;
            """);

        [Fact]
        public Task MDSL0014_segment_embeddings_on_a_decoder_are_reported_on_the_attribute() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            [{|MDSL0014:SegmentEmbeddings|}]
            public partial record M;
            """);

        [Fact]
        public Task MDSL0014_tied_embeddings_and_rotary_positions_on_a_vision_encoder_are_reported() => VerifyAsync("""
            [VisionEncoder(ImageSize = 32, PatchSize = 8, Channels = 3, Hidden = 64, Heads = 4, Layers = 2, Classes = 10)]
            [{|MDSL0014:TiedEmbeddings|}, {|MDSL0014:RotaryPositions|}]
            public partial record V;
            """);

        [Fact]
        public Task MDSL0014_passes_for_segment_embeddings_on_an_encoder() => VerifyAsync("""
            [Encoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)]
            [SegmentEmbeddings(Types = 2), TiedEmbeddings]
            public partial record B;
            """);

        [Fact]
        public Task MDSL0015_dsl_attributes_without_a_family_are_reported_on_the_first_attribute() => VerifyAsync("""
            [{|MDSL0015:FeedForward(Inner = 256)|}, PreNorm]
            public partial record M;
            """);

        [Fact]
        public Task MDSL0015_passes_once_a_family_is_added() => VerifyAsync("""
            [FeedForward(Inner = 256), PreNorm]
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            public partial record M;
            """);

        [Fact]
        public Task MDSL0016_a_second_position_scheme_is_reported_on_the_second() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            [LearnedPositions, {|MDSL0016:RotaryPositions|}]
            public partial record M;
            """);

        [Fact]
        public Task MDSL0016_pre_and_post_norm_are_reported_on_the_second() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            [PostNorm, {|MDSL0016:PreNorm|}]
            public partial record M;
            """);

        [Fact]
        public Task MDSL0016_a_second_family_is_reported_on_the_second() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            [{|MDSL0016:Encoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)|}]
            public partial record M;
            """);

        [Fact]
        public Task MDSL0016_passes_for_one_scheme_one_norm_one_family() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            [RotaryPositions, PreNorm]
            public partial record M;
            """);

        [Fact]
        public Task MDSL0017_a_non_partial_record_is_reported_on_its_name() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            public record {|MDSL0017:M|};
            """);

        [Fact]
        public Task MDSL0017_a_partial_record_in_a_non_partial_class_is_reported_on_its_name() => VerifyAsync("""
            public class Models
            {
                [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
                public partial record {|MDSL0017:M|};
            }
            """);

        [Fact]
        public Task MDSL0017_a_generic_record_is_reported_on_its_name() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            public partial record {|MDSL0017:M|}<T>;
            """);

        [Fact]
        public Task MDSL0017_passes_for_partial_types_all_the_way_out() => VerifyAsync("""
            public static partial class Models
            {
                [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
                public partial record M;

                [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
                internal sealed partial class C { }
            }
            """);

        [Fact]
        public Task MDSL0019_a_window_as_long_as_the_context_is_reported_on_window() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            [Attention(Window = {|MDSL0019:64|})]
            public partial record M;
            """);

        [Fact]
        public Task MDSL0019_passes_for_a_window_shorter_than_the_context() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            [Attention(Window = 16)]
            public partial record M;
            """);
    
        [Theory]
        [InlineData("Card")]
        [InlineData("CreateTorchSharp")]
        [InlineData("TorchSharpModel")]
        [InlineData("CreateIlgpu")]
        [InlineData("IlgpuModel")]
        public Task MDSL0020_a_model_named_like_a_generated_member_is_reported_on_its_name(string name) => VerifyAsync($$"""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            public partial record {|MDSL0020:{{name}}|};
            """);

        [Fact]
        public Task MDSL0020_a_global_model_named_like_a_root_namespace_is_reported_but_not_inside_a_namespace() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            public partial record {|MDSL0020:TorchSharp|};
            namespace App
            {
                [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
                public partial record TorchSharp;
            }
            """);

        [Fact]
        public Task MDSL0020_passes_for_names_of_runtime_types_and_escaped_keywords() => VerifyAsync("""
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            public partial record Tensor;
            [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]
            public partial record @class;
            """, torchSharp: true);
    }
}
