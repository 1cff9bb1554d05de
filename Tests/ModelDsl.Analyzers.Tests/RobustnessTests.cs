using System.Diagnostics;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using ModelDsl.Generators.Validation;
using ModelDsl.Analyzers.Tests.Infrastructure;
using Xunit;

namespace ModelDsl.Analyzers.Tests
{
    /// <summary>
    /// Half-typed and unusual declarations, as the IDE sees them between keystrokes: the generator must not throw
    /// (no CS8785), the analyzer must not throw (no AD0001) and reports ModelDsl diagnostics or nothing.
    /// </summary>
    public sealed class RobustnessTests
    {
        public static TheoryData<string, string> Declarations => new()
        {
            { "missing value", "[Decoder(Vocab = , Hidden = 64)] public partial record M;" },
            { "string for an int", "[Decoder(Heads = \"x\")] public partial record M;" },
            { "unknown constant", "[Decoder(Layers = UnknownConst)] public partial record M;" },
            { "unclosed argument list", "[Decoder(Vocab = 100, Hidden = 64\npublic partial record M;" },
            { "unknown argument", "[Decoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2, Depth = 3)] public partial record M;" },
            { "no arguments", "[Decoder] public partial record M;" },
            { "empty argument list", "[Decoder()] public partial record M;" },
            { "positional argument", "[Decoder(100)] public partial record M;" },
            { "dropout without a rate", "[Decoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2), Dropout] public partial record M;" },
            { "dropout with a string", "[Decoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2), Dropout(\"x\")] public partial record M;" },
            { "non-partial class", "[Decoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)] public class M { }" },
            { "generic record", "[Decoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)] public partial record M<T>;" },
            { "nested in a non-partial class", "public class Outer { [Decoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)] public partial record M; }" },
            { "nested in a generic class", "public partial class Outer<T> { [Decoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)] public partial record M; }" },
            { "struct", "[Decoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)] public struct M { }" },
            { "partial record struct", "[Decoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)] public partial record struct M;" },
            { "interface", "[Decoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)] public partial interface M { }" },
            { "enum", "[Decoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)] public enum M { A }" },
            { "method", "public partial class C { [Decoder(Vocab = 100)] void F() { } }" },
            { "twice", "[Decoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)][Decoder(Vocab = 1)] public partial record M;" },
            { "split across partial declarations", "[Decoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)] public partial record M; [PreNorm, PostNorm] public partial record M;" },
            { "huge dimensions, invalid", "[Decoder(Vocab = int.MaxValue, Context = int.MaxValue, Hidden = int.MaxValue, Heads = 7, Layers = int.MaxValue), Lora(Rank = int.MaxValue)] public partial record M;" },
            { "huge prime hidden size", "[Decoder(Vocab = 100, Context = 64, Hidden = int.MaxValue, Heads = 12, Layers = 2)] public partial record M;" },
            { "huge image", "[VisionEncoder(ImageSize = int.MaxValue, PatchSize = 7, Channels = 3, Hidden = 64, Heads = 4, Layers = 2, Classes = 2)] public partial record V;" },
            { "NaN everywhere", "[Decoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2), PreNorm(Epsilon = double.NaN), RotaryPositions(Base = double.NaN), Dropout(double.NaN), Lora(Alpha = double.NaN), MixtureOfExperts(Experts = 2, AuxLossWeight = double.NaN)] public partial record M;" },
            { "attribute class with a DSL name elsewhere", "namespace Other { public sealed class DecoderAttribute : System.Attribute { } [Decoder] public partial record M; }" },
            { "fully qualified with suffix", "[global::ModelDsl.DecoderAttribute(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)] public partial record M;" },
            { "in the global namespace, file-scoped elsewhere", "[Decoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)] partial record M; namespace N.O { [Decoder(Vocab = 100, Context = 64, Hidden = 64, Heads = 4, Layers = 2)] partial record M; }" },
        };

        [Theory]
        [MemberData(nameof(Declarations))]
        public async Task Neither_the_generator_nor_the_analyzer_throws(string name, string declaration)
        {
            _ = name;
            foreach (var torchSharp in new[] { false, true })
            {
                var source = AnalyzerVerifier.Usings + declaration;
                var compilation = torchSharp
                    ? TestCompilation.Create(source, TestCompilation.TorchSharpRuntimeStub)
                    : TestCompilation.Create(source);

                var watch = Stopwatch.StartNew();
                var (driver, _, generatorDiagnostics) = AnalyzerRunner.Generate(compilation);
                var result = driver.GetRunResult().Results.Single();
                Assert.Null(result.Exception);
                Assert.DoesNotContain(generatorDiagnostics, d => d.Id is "CS8784" or "CS8785");

                var diagnostics = await AnalyzerRunner.AnalyzeAsync(compilation);
                Assert.True(watch.Elapsed.TotalSeconds < 10, $"Analysis took {watch.Elapsed}.");
                Assert.DoesNotContain(diagnostics, d => d.Id == "AD0001");
                Assert.All(diagnostics, d => Assert.True(AnalyzerRunner.IsModelDsl(d), AnalyzerRunner.Describe(d)));
                Assert.All(diagnostics, d => Assert.True(d.Location.IsInSource, AnalyzerRunner.Describe(d)));
            }
        }

        [Fact]
        public void Divisors_are_fast_and_exact_up_to_int_max_value()
        {
            Assert.Equal(new[] { 1, 2, 5, 7, 10, 11, 14, 22, 35, 55, 70, 77, 110, 154, 385, 770 }, ModelValidator.Divisors(770));
            Assert.Equal(new[] { 1, 2, 4, 8, 16 }, ModelValidator.Divisors(16));
            Assert.Equal(new[] { 1, int.MaxValue }, ModelValidator.Divisors(int.MaxValue));
            Assert.Empty(ModelValidator.Divisors(0));
            Assert.Equal("11 or 14", ModelValidator.NearestDivisors(770, 12));
        }

        [Fact]
        public Task A_declaration_too_large_for_a_long_parameter_count_does_not_crash_the_generator()
            => Neither_the_generator_nor_the_analyzer_throws("huge dimensions",
                "[Decoder(Vocab = int.MaxValue, Context = int.MaxValue, Hidden = int.MaxValue, Heads = 1, Layers = int.MaxValue)] public partial record M;");

        [Fact]
        public async Task A_half_typed_value_is_reported_as_missing_rather_than_as_zero()
        {
            var compilation = TestCompilation.Create(AnalyzerVerifier.Usings
                + "[Decoder(Vocab = , Context = 64, Hidden = 64, Heads = 4, Layers = 2)] public partial record M;");
            var diagnostics = await AnalyzerRunner.AnalyzeAsync(compilation);
            var diagnostic = Assert.Single(diagnostics);
            Assert.Equal("MDSL0004", diagnostic.Id);
            Assert.Contains("needs Vocab", diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
        }
    }
}
