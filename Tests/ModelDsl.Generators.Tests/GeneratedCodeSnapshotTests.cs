using System;
using System.IO;
using System.Linq;
using Xunit;

namespace ModelDsl.Generators.Tests
{
    /// <summary>Every example model's generated code, pinned: any change to the output is a reviewed diff.</summary>
    public sealed class GeneratedCodeSnapshotTests
    {
        /// <summary>Every declaration of the examples (Examples/ModelDsl.Examples/Models/*.cs), compiled together.</summary>
        private static readonly string[] ExampleModels = Directory
            .GetFiles(Path.Combine(AppContext.BaseDirectory, "Examples", "Models"), "*.cs")
            .OrderBy(f => f, StringComparer.Ordinal).Select(File.ReadAllText).ToArray();

        public static TheoryData<string> GeneratedFiles()
        {
            var data = new TheoryData<string>();
            foreach (var hint in GeneratorHarness.Run(GeneratorHarness.Compilation(runtimes: true, ExampleModels)).Sources.Keys.OrderBy(k => k, StringComparer.Ordinal))
                data.Add(hint);
            return data;
        }

        [Theory]
        [MemberData(nameof(GeneratedFiles))]
        public void Example_models_generate_the_reviewed_code(string hintName)
        {
            var (_, sources) = GeneratorHarness.Run(GeneratorHarness.Compilation(runtimes: true, ExampleModels));
            Snapshot.Verify(sources[hintName], hintName.Replace("ModelDsl.Examples.", "").Replace(".g.cs", "").Replace('.', '_'));
        }

        [Fact]
        public void Every_example_model_gets_a_card_and_TorchSharp_code_and_the_GPT_and_MoE_ones_ILGPU_code()
        {
            var (_, sources) = GeneratorHarness.Run(GeneratorHarness.Compilation(runtimes: true, ExampleModels));
            var cards = sources.Keys.Where(k => !k.EndsWith(".TorchSharp.g.cs", StringComparison.Ordinal) && !k.EndsWith(".Ilgpu.g.cs", StringComparison.Ordinal)).ToList();
            Assert.True(cards.Count >= 2);
            Assert.All(cards, card => Assert.Contains(card.Replace(".g.cs", ".TorchSharp.g.cs"), sources.Keys));
            Assert.Contains("ModelDsl.Examples.KjvGpt.Ilgpu.g.cs", sources.Keys);
            Assert.Contains("ModelDsl.Examples.KjvMoeGpt.Ilgpu.g.cs", sources.Keys);
        }

        /// <summary>
        /// Switch's layout on ILGPU (a mixture of experts in every second of four layers): the table of the variant each layer
        /// runs, each variant's copy table, the per-layer dispatch and the layer-output helper, reviewed like the examples' code.
        /// </summary>
        [Fact]
        public void A_stack_whose_layers_differ_generates_the_reviewed_ILGPU_code()
        {
            var (output, sources) = GeneratorHarness.Run(GeneratorHarness.Compilation(runtimes: true, """
                using ModelDsl;

                namespace Switch
                {
                    [Decoder(Vocab = 64, Context = 128, Hidden = 128, Heads = 4, Layers = 4)]
                    [FeedForward(Inner = 512, Activation = Activation.Relu)]
                    [LearnedPositions, PreNorm(Epsilon = 1e-5), TiedEmbeddings]
                    [MixtureOfExperts(Experts = 8, TopK = 1, Every = 2)]
                    public partial record SwitchGpt;
                }
                """));
            Assert.Empty(GeneratorHarness.Errors(output));
            Snapshot.Verify(sources["Switch.SwitchGpt.Ilgpu.g.cs"], "SwitchGpt_Ilgpu");
        }

        [Fact]
        public void Example_models_compile_without_errors_or_warnings()
        {
            var (output, _) = GeneratorHarness.Run(GeneratorHarness.Compilation(runtimes: true, ExampleModels));

            var problems = output.GetDiagnostics().Where(d => d.Severity >= Microsoft.CodeAnalysis.DiagnosticSeverity.Warning).ToList();
            Assert.True(problems.Count == 0, string.Join("\n", problems));
        }

        [Fact]
        public void Without_a_backend_runtime_only_the_model_card_is_generated()
        {
            var (output, sources) = GeneratorHarness.Run(GeneratorHarness.Compilation(runtimes: false, ExampleModels));

            Assert.NotEmpty(sources);
            Assert.All(sources.Keys, k => Assert.DoesNotContain("TorchSharp", k));
            Assert.All(sources.Keys, k => Assert.DoesNotContain("Ilgpu", k));
            Assert.Empty(GeneratorHarness.Errors(output));
        }

        [Fact]
        public void Output_is_identical_under_a_culture_with_comma_decimals()
        {
            var invariant = GeneratorHarness.Run(GeneratorHarness.Compilation(runtimes: true, ExampleModels)).Sources;
            var previous = System.Globalization.CultureInfo.CurrentCulture;
            try
            {
                // A culture like de-DE, built by hand so the test needs no ICU data.
                var comma = (System.Globalization.CultureInfo)System.Globalization.CultureInfo.InvariantCulture.Clone();
                comma.NumberFormat.NumberDecimalSeparator = ",";
                comma.NumberFormat.NumberGroupSeparator = ".";
                comma.NumberFormat.NegativeSign = "\u2212";
                System.Globalization.CultureInfo.CurrentCulture = comma;
                var german = GeneratorHarness.Run(GeneratorHarness.Compilation(runtimes: true, ExampleModels)).Sources;
                Assert.Equal(invariant, german);
            }
            finally
            {
                System.Globalization.CultureInfo.CurrentCulture = previous;
            }
        }

        [Fact]
        public void Nested_and_global_namespace_models_get_unique_hint_names_and_compile()
        {
            const string source = """
                using ModelDsl;
                [Decoder(Vocab = 10, Context = 8, Hidden = 8, Heads = 2, Layers = 1)]
                public partial record GlobalGpt;
                namespace Deep.Space
                {
                    public static partial class Zoo
                    {
                        [Decoder(Vocab = 10, Context = 8, Hidden = 8, Heads = 2, Layers = 1)]
                        public partial class NestedGpt { }
                    }
                }
                """;
            var (output, sources) = GeneratorHarness.Run(GeneratorHarness.Compilation(runtimes: true, source));

            Assert.Contains("GlobalGpt.TorchSharp.g.cs", sources.Keys);
            Assert.Contains("Deep.Space.Zoo.NestedGpt.TorchSharp.g.cs", sources.Keys);
            Assert.Empty(GeneratorHarness.Errors(output));
        }

        [Fact]
        public void Invalid_declarations_generate_nothing()
        {
            const string source = """
                using ModelDsl;
                [Decoder(Vocab = 10, Context = 8, Hidden = 770, Heads = 12, Layers = 1)]
                public partial record Broken;
                """;
            var (output, sources) = GeneratorHarness.Run(GeneratorHarness.Compilation(runtimes: true, source));

            Assert.Empty(sources);
            Assert.Empty(GeneratorHarness.Errors(output));
        }
    }
}
