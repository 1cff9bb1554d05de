extern alias Generators;

using System.Collections.Immutable;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using ModelGenerator = Generators::ModelDsl.Generators.ModelGenerator;

namespace ModelDsl.Analyzers.Tests.Infrastructure
{
    /// <summary>Runs the analyzer and the generator in-process over a test compilation.</summary>
    internal static class AnalyzerRunner
    {
        /// <summary>Every diagnostic the analyzer reports, including AD0001 should it throw.</summary>
        public static Task<ImmutableArray<Diagnostic>> AnalyzeAsync(Compilation compilation)
        {
            var options = new CompilationWithAnalyzersOptions(
                options: new AnalyzerOptions(ImmutableArray<AdditionalText>.Empty), onAnalyzerException: null, concurrentAnalysis: false, logAnalyzerExecutionTime: false);
            return compilation
                .WithAnalyzers(ImmutableArray.Create<DiagnosticAnalyzer>(new ModelDeclarationAnalyzer()), options)
                .GetAnalyzerDiagnosticsAsync();
        }

        /// <summary>Runs the generator; returns the driver (for its run result) and the compilation with its output.</summary>
        public static (GeneratorDriver Driver, Compilation Output, ImmutableArray<Diagnostic> Diagnostics) Generate(Compilation compilation)
        {
            GeneratorDriver driver = CSharpGeneratorDriver.Create(
                new[] { new ModelGenerator().AsSourceGenerator() },
                parseOptions: TestCompilation.ParseOptions,
                driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: false));
            driver = driver.RunGeneratorsAndUpdateCompilation(compilation, out var output, out var diagnostics);
            return (driver, output, diagnostics);
        }

        public static bool IsModelDsl(Diagnostic diagnostic) => diagnostic.Id.StartsWith("MDSL", System.StringComparison.Ordinal);

        public static string Describe(Diagnostic diagnostic)
        {
            var span = diagnostic.Location.GetLineSpan();
            var text = diagnostic.Location.SourceTree?.GetText().ToString(diagnostic.Location.SourceSpan) ?? "";
            return $"{diagnostic.Id} at {span.Path}({span.StartLinePosition.Line + 1},{span.StartLinePosition.Character + 1}) '{text}': {diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture)}";
        }
    }
}
