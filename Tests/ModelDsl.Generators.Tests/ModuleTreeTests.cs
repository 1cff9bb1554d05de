using System.Linq;
using Xunit;

namespace ModelDsl.Generators.Tests
{
    /// <summary>The generated TorchSharp module tree: which modules exist in which layers.</summary>
    public sealed class ModuleTreeTests
    {
        [Fact]
        public void Experts_have_all_their_modules_in_every_layer_that_has_experts()
        {
            var (_, sources) = GeneratorHarness.Run(GeneratorHarness.Compilation(runtimes: true, """
                using ModelDsl;
                [Decoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 4)]
                [MixtureOfExperts(Experts = 4, TopK = 1, Every = 2)]
                public partial record M;
                """));
            string code = sources.Single(s => s.Key.EndsWith(".TorchSharp.g.cs", System.StringComparison.Ordinal)).Value;
            // The expert list is what only layers 1 and 3 have; an expert built there is whole (its index is not a layer's).
            Assert.Contains("experts = DecoderLayerVariants[layerIndex] == 1 ? ModuleList(Experts, _ => new GPT2MLP()) : null;", code);
            Assert.Contains("public readonly global::ModelDsl.TorchSharp.Conv1D c_fc; // weight [Hidden=32, Inner=128]", code);
            Assert.Contains("c_fc = DecoderLayerVariants[layerIndex] == 0 ? new global::ModelDsl.TorchSharp.Conv1D(Hidden, Inner, bias: true) : null;", code);
        }
    }
}
