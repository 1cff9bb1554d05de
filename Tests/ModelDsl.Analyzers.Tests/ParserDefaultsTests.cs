using System.Linq;
using ModelDsl.Generators.Parsing;
using Xunit;

namespace ModelDsl.Analyzers.Tests
{
    /// <summary>
    /// The parser keeps its own copy of the attributes' defaults (the generator must not load the user-facing
    /// assembly); these tests pin the two copies together.
    /// </summary>
    public sealed class ParserDefaultsTests
    {
        [Fact]
        public void Attention_defaults_match() => Assert.Equal(ModelParser.Defaults.AttentionBias, new AttentionAttribute().Bias);

        [Fact]
        public void Feed_forward_defaults_match()
        {
            var attribute = new FeedForwardAttribute();
            Assert.Equal(ModelParser.Defaults.Activation, (int)attribute.Activation);
            Assert.Equal(ModelParser.Defaults.FeedForwardBias, attribute.Bias);
        }

        [Fact]
        public void Position_defaults_match()
        {
            Assert.Equal(ModelParser.Defaults.RotaryBase, new RotaryPositionsAttribute().Base);
            Assert.Equal(ModelParser.Defaults.RelativeBuckets, new RelativePositionsAttribute().Buckets);
            Assert.Equal(ModelParser.Defaults.RelativeMaxDistance, new RelativePositionsAttribute().MaxDistance);
        }

        [Fact]
        public void Norm_defaults_match_for_both_placements()
        {
            Assert.Equal(ModelParser.Defaults.NormKind, (int)new PreNormAttribute().Kind);
            Assert.Equal(ModelParser.Defaults.NormEpsilon, new PreNormAttribute().Epsilon);
            Assert.Equal(ModelParser.Defaults.NormKind, (int)new PostNormAttribute().Kind);
            Assert.Equal(ModelParser.Defaults.NormEpsilon, new PostNormAttribute().Epsilon);
        }

        [Fact]
        public void Segment_defaults_match() => Assert.Equal(ModelParser.Defaults.SegmentTypes, new SegmentEmbeddingsAttribute().Types);

        [Fact]
        public void Mixture_of_experts_defaults_match()
        {
            var attribute = new MixtureOfExpertsAttribute();
            Assert.Equal(ModelParser.Defaults.ExpertTopK, attribute.TopK);
            Assert.Equal(ModelParser.Defaults.ExpertEvery, attribute.Every);
            Assert.Equal(ModelParser.Defaults.AuxLossWeight, attribute.AuxLossWeight);
        }

        [Fact]
        public void Lora_defaults_match()
        {
            var attribute = new LoraAttribute();
            Assert.Equal(ModelParser.Defaults.LoraRank, attribute.Rank);
            Assert.Equal(ModelParser.Defaults.LoraAlpha, attribute.Alpha);
            Assert.Equal(ModelParser.Defaults.LoraTargets, (int)attribute.Targets);
        }

        [Fact]
        public void The_mirrored_enums_have_the_same_names_and_values()
        {
            AssertSameMembers<global::ModelDsl.Activation, global::ModelDsl.Generators.Model.Activation>();
            AssertSameMembers<global::ModelDsl.NormKind, global::ModelDsl.Generators.Model.NormKind>();
            AssertSameMembers<global::ModelDsl.LoraTargets, global::ModelDsl.Generators.Model.LoraTargets>();
        }

        private static void AssertSameMembers<TPublic, TMirror>() where TPublic : struct, System.Enum where TMirror : struct, System.Enum
        {
            string Describe<T>() where T : struct, System.Enum
                => string.Join(", ", System.Enum.GetValues<T>().Select(v => v + "=" + System.Convert.ToInt32(v)));
            Assert.Equal(Describe<TPublic>(), Describe<TMirror>());
        }
    }
}
