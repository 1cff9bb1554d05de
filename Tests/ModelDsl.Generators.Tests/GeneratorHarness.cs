using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Basic.Reference.Assemblies;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace ModelDsl.Generators.Tests
{
    /// <summary>Compiles sources with the generator in-process, referencing the DSL and (optionally) both backends' runtimes.</summary>
    internal static class GeneratorHarness
    {
        public static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

        private static readonly ImmutableArray<MetadataReference> BaseReferences =
            Net100.References.All.Cast<MetadataReference>()
                .Append(MetadataReference.CreateFromFile(typeof(ModelDsl.DecoderAttribute).Assembly.Location))
                .ToImmutableArray();

        private static readonly ImmutableArray<MetadataReference> RuntimeReferences =
            BaseReferences
                .Append(MetadataReference.CreateFromFile(typeof(global::TorchSharp.torch).Assembly.Location))
                .Append(MetadataReference.CreateFromFile(typeof(ModelDsl.TorchSharp.CausalLanguageModel).Assembly.Location))
                .Append(MetadataReference.CreateFromFile(typeof(ModelDsl.Training.TrainingOptions).Assembly.Location))
                .Append(MetadataReference.CreateFromFile(typeof(global::ILGPU.Context).Assembly.Location))
                .Append(MetadataReference.CreateFromFile(typeof(ModelDsl.Ilgpu.IlgpuTransformerModel).Assembly.Location))
                .ToImmutableArray();

        public static CSharpCompilation Compilation(bool runtimes, params string[] sources)
            => CSharpCompilation.Create("Consumer",
                sources.Select((s, i) => CSharpSyntaxTree.ParseText(s, ParseOptions, path: $"Source{i}.cs")),
                runtimes ? RuntimeReferences : BaseReferences,
                new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable)
                    // As the SDK does: TorchSharp targets net8.0, whose System.Runtime unifies with net10.0's.
                    .WithSpecificDiagnosticOptions(new Dictionary<string, ReportDiagnostic>
                    {
                        ["CS1701"] = ReportDiagnostic.Suppress,
                        ["CS1702"] = ReportDiagnostic.Suppress,
                    }));

        public static GeneratorDriver Driver(bool trackSteps = false)
            => CSharpGeneratorDriver.Create(
                new[] { new ModelGenerator().AsSourceGenerator() },
                parseOptions: ParseOptions,
                driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: trackSteps));

        /// <summary>Runs the generator; returns the output compilation and generated sources by hint name.</summary>
        public static (Compilation Output, IReadOnlyDictionary<string, string> Sources) Run(CSharpCompilation compilation)
        {
            var driver = Driver().RunGeneratorsAndUpdateCompilation(compilation, out var output, out var diagnostics);
            var result = driver.GetRunResult().Results.Single();
            if (result.Exception is not null) throw new InvalidOperationException("The generator threw.", result.Exception);
            if (diagnostics.Length > 0) throw new InvalidOperationException("Generator diagnostics: " + string.Join("; ", diagnostics));
            return (output, result.GeneratedSources.ToDictionary(s => s.HintName, s => s.SourceText.ToString()));
        }

        public static IEnumerable<Diagnostic> Errors(Compilation compilation)
            => compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error);
    }
}
