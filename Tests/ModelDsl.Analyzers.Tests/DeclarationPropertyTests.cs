using System.Collections.Generic;
using System.Linq;
using CsCheck;
using Microsoft.CodeAnalysis;
using ModelDsl.Analyzers.Tests.Infrastructure;
using ModelDsl.Generators.Spec;
using ModelDsl.Generators.Emit;
using ModelDsl.Generators.Parsing;
using ModelDsl.Generators.Validation;
using Xunit;

namespace ModelDsl.Analyzers.Tests
{
    /// <summary>
    /// Random declarations, valid and not (small dimensions including 0 and negatives, conflicting attributes,
    /// out-of-range values), against three promises: the generator never throws; the analyzer reports an error
    /// exactly when the validator calls the spec invalid; and a valid decoder the TorchSharp emitter supports gets
    /// generated code that compiles against the real TorchSharp.
    /// </summary>
    public sealed class DeclarationPropertyTests
    {
        private static Gen<string> Int(int low, int high) => Gen.Int[low, high].Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture));

        /// <summary>Usually one of the sensible values, sometimes anything in [low, high] (0 and negatives included).</summary>
        private static Gen<string> Mostly(int low, int high, params string[] sensible)
            => Gen.Frequency((4, Gen.OneOf(sensible)), (1, Int(low, high)));

        private static readonly Gen<string> Vocab = Mostly(-1, 64, "32", "50", "64");
        private static readonly Gen<string> Context = Mostly(-1, 64, "16", "32", "64");
        private static readonly Gen<string> Hidden = Mostly(-2, 64, "16", "32", "48", "64");
        private static readonly Gen<string> Heads = Mostly(-1, 8, "1", "2", "4", "8");
        private static readonly Gen<string> Layers = Mostly(-1, 3, "1", "2");

        /// <summary>"Name = value" written with probability <paramref name="written"/>, else nothing.</summary>
        private static Gen<string?> Named(string name, Gen<string> value, double written = 0.5)
            => Gen.Int[0, 99].SelectMany(p => p < written * 100 ? value.Select(v => (string?)(name + " = " + v)) : Gen.Const((string?)null));

        /// <summary>An attribute with those of its arguments that were written.</summary>
        private static Gen<string> Attribute(string name, params Gen<string?>[] arguments)
            => arguments.Aggregate(Gen.Const(new List<string>()), (list, argument) =>
                    list.SelectMany(l => argument.Select(a => a is null ? l : l.Append(a).ToList())))
                .Select(args => args.Count == 0 ? name : name + "(" + string.Join(", ", args) + ")");

        private static Gen<string?> Maybe(Gen<string> attribute, double present)
            => Gen.Int[0, 99].SelectMany(p => p < present * 100 ? attribute.Select(a => (string?)a) : Gen.Const((string?)null));

        private static readonly Gen<string> Decoder = Attribute("Decoder",
            Named("Vocab", Vocab, 0.95), Named("Context", Context, 0.95), Named("Hidden", Hidden, 0.95),
            Named("Heads", Heads, 0.95), Named("Layers", Layers, 0.95));

        private static readonly Gen<string> Encoder = Attribute("Encoder",
            Named("Vocab", Vocab, 0.95), Named("Context", Context, 0.95), Named("Hidden", Hidden, 0.95),
            Named("Heads", Heads, 0.95), Named("Layers", Layers, 0.95));

        private static readonly Gen<string> EncoderDecoder = Attribute("EncoderDecoder",
            Named("Vocab", Vocab, 0.95), Named("Context", Context, 0.95), Named("Hidden", Hidden, 0.95),
            Named("Heads", Heads, 0.95), Named("EncoderLayers", Layers, 0.95), Named("DecoderLayers", Layers, 0.95));

        private static readonly Gen<string> VisionEncoder = Attribute("VisionEncoder",
            Named("ImageSize", Mostly(-1, 64, "32", "64"), 0.95), Named("PatchSize", Mostly(-1, 16, "4", "8", "16"), 0.95),
            Named("Channels", Mostly(-1, 3, "1", "3"), 0.95), Named("Hidden", Hidden, 0.95), Named("Heads", Heads, 0.95),
            Named("Layers", Layers, 0.95), Named("Classes", Mostly(-1, 10, "2", "10"), 0.95));

        private static readonly Gen<string> Epsilon = Gen.Frequency((8, Gen.OneOf("1e-5", "1e-12")), (1, Gen.OneOf("0", "-1e-6", "double.NaN")));

        private static readonly Gen<string[]> Extras =
            from attention in Maybe(Attribute("Attention", Named("KvHeads", Heads), Named("HeadDim", Mostly(-1, 16, "8", "16")),
                Named("Window", Mostly(-1, 70, "8", "16")), Named("Bias", Gen.OneOf("true", "false"), 0.2)), 0.35)
            from feedForward in Maybe(Attribute("FeedForward", Named("Inner", Mostly(-1, 128, "64", "128")),
                Named("Activation", Gen.OneOf("Activation.Gelu", "Activation.GeluTanh", "Activation.Relu", "Activation.SwiGlu", "Activation.GeGlu", "(Activation)7")),
                Named("Bias", Gen.OneOf("true", "false"), 0.2)), 0.5)
            from learned in Maybe(Gen.Const("LearnedPositions"), 0.4)
            from sinusoidal in Maybe(Gen.Const("SinusoidalPositions"), 0.1)
            from rotary in Maybe(Attribute("RotaryPositions", Named("Base", Gen.OneOf("10000", "1", "500000.0"), 0.3)), 0.15)
            from relative in Maybe(Attribute("RelativePositions", Named("Buckets", Mostly(-1, 40, "8", "32")), Named("MaxDistance", Mostly(0, 130, "64", "128"))), 0.1)
            from preNorm in Maybe(Attribute("PreNorm", Named("Epsilon", Epsilon),
                Named("Kind", Gen.OneOf("NormKind.LayerNorm", "NormKind.RmsNorm"), 0.2)), 0.5)
            from postNorm in Maybe(Attribute("PostNorm", Named("Epsilon", Epsilon)), 0.15)
            from tied in Maybe(Gen.Const("TiedEmbeddings"), 0.4)
            from dropout in Maybe(Gen.Frequency((4, Gen.OneOf("0", "0.1", "0.5")), (1, Gen.OneOf("1", "-0.1", "1.5"))).Select(r => "Dropout(" + r + ")"), 0.3)
            from segments in Maybe(Attribute("SegmentEmbeddings", Named("Types", Int(-1, 3))), 0.05)
            from classification in Maybe(Attribute("ClassificationHead", Named("Classes", Int(-1, 4))), 0.05)
            from moe in Maybe(Attribute("MixtureOfExperts", Named("Experts", Mostly(-1, 8, "2", "4", "8"), 0.9), Named("TopK", Mostly(-1, 3, "1", "2")),
                Named("Every", Mostly(-1, 4, "1", "2")), Named("AuxLossWeight", Gen.OneOf("0.01", "0", "-1"), 0.2)), 0.15)
            from lora in Maybe(Attribute("Lora", Named("Rank", Mostly(-1, 80, "2", "4", "8")), Named("Alpha", Gen.OneOf("16", "0", "-1"), 0.3),
                Named("Targets", Gen.OneOf("LoraTargets.Query | LoraTargets.Value", "LoraTargets.FeedForward", "LoraTargets.None", "LoraTargets.Output | LoraTargets.Key"))), 0.15)
            select new[] { attention, feedForward, learned, sinusoidal, rotary, relative, preNorm, postNorm, tied, dropout, segments, classification, moe, lora }
                .Where(a => a is not null).Select(a => a!).ToArray();

        /// <summary>Mostly decoders, some of each other family (every family builds its op graph).</summary>
        private static readonly Gen<string> Declarations =
            from family in Gen.Frequency((6, Decoder), (1, Encoder), (1, EncoderDecoder), (1, VisionEncoder))
            from extras in Extras
            from shuffled in Gen.Shuffle(extras)
            select "using ModelDsl;\n\n[" + family + "]\n"
                + string.Concat(shuffled.Select(a => "[" + a + "]\n"))
                + "public partial record M;\n";

        [Fact]
        public void Generator_and_analyzer_agree_with_the_validator_and_valid_decoders_compile_against_TorchSharp()
        {
            int compiled = 0, valid = 0;
            Declarations.Sample(source =>
            {
                var compilation = TestCompilation.CreateWithTorchSharp(source);
                var declarationErrors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
                Assert.True(declarationErrors.Count == 0, string.Join("\n", declarationErrors));

                var (driver, output, generatorDiagnostics) = AnalyzerRunner.Generate(compilation);
                Assert.Null(driver.GetRunResult().Results.Single().Exception);
                Assert.DoesNotContain(generatorDiagnostics, d => d.Id is "CS8784" or "CS8785");

                var diagnostics = AnalyzerRunner.AnalyzeAsync(compilation).GetAwaiter().GetResult();
                Assert.DoesNotContain(diagnostics, d => d.Id == "AD0001");
                Assert.All(diagnostics, d => Assert.True(d.Location.IsInSource, AnalyzerRunner.Describe(d)));

                var spec = ModelParser.Parse(compilation.GetTypeByMetadataName("M")!, default);
                bool isValid = ModelValidator.IsValid(spec);
                bool analyzerError = diagnostics.Any(d => d.Severity == DiagnosticSeverity.Error);
                Assert.True(isValid != analyzerError,
                    $"Validator says {(isValid ? "valid" : "invalid")}, analyzer reported:\n" + string.Join("\n", diagnostics.Select(AnalyzerRunner.Describe)));
                if (!isValid) return;
                System.Threading.Interlocked.Increment(ref valid);

                // Every valid declaration, of every family, gets its op graph and card; TorchSharp code exactly when the
                // backend implements every op kind of the graph.
                {
                    bool supported = !BackendSupport.Gaps(spec, BackendSupport.TorchSharp).Any();
                    Assert.Equal(supported ? 2 : 1, driver.GetRunResult().GeneratedTrees.Length);
                    Assert.Equal(supported, diagnostics.All(d => d.Id != "MDSL0100"));
                    var errors = output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
                    Assert.True(errors.Count == 0, "Generated code does not compile:\n" + string.Join("\n", errors.Take(10)));
                    if (supported) System.Threading.Interlocked.Increment(ref compiled);
                }
            }, iter: 150, print: source => source);

            // The generator's ranges must keep producing interesting cases, not only invalid ones.
            Assert.True(valid >= 10, $"Only {valid} valid declarations in 150.");
            Assert.True(compiled >= 3, $"Only {compiled} generated TorchSharp models compiled in 150.");
        }
    }
}
