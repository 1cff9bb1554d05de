using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Xunit;

namespace ModelDsl.Analyzers.Tests.Infrastructure
{
    /// <summary>
    /// Asserts that the analyzer reports exactly the ModelDsl diagnostics marked in the source (id and span), and
    /// no others: no extra MDSL diagnostic, no analyzer exception (AD0001), and no compiler error in the test source.
    /// </summary>
    internal static class AnalyzerVerifier
    {
        public const string Usings = "using ModelDsl;\n\n";

        /// <param name="markup">Source with <c>{|ID:text|}</c> markers; <see cref="Usings"/> is prepended.</param>
        /// <param name="torchSharp">Whether the compilation holds the TorchSharp runtime type (enables MDSL0100 for it).</param>
        /// <param name="ilgpu">Whether it holds the ILGPU runtime type (enables MDSL0100 for ILGPU).</param>
        public static async Task<IReadOnlyList<Diagnostic>> VerifyAsync(string markup, bool torchSharp = false, bool ilgpu = false)
        {
            var (source, expected) = Markup.Parse(Usings + markup);
            var runtimes = (torchSharp ? new[] { TestCompilation.TorchSharpRuntimeStub } : System.Array.Empty<string>())
                .Concat(ilgpu ? new[] { TestCompilation.IlgpuRuntimeStub } : System.Array.Empty<string>()).ToArray();
            var compilation = TestCompilation.Create(new[] { source }.Concat(runtimes).ToArray());

            var compilerErrors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
            Assert.True(compilerErrors.Count == 0,
                "The test source does not compile:\n" + string.Join("\n", compilerErrors.Select(d => d.ToString())));

            var diagnostics = await AnalyzerRunner.AnalyzeAsync(compilation);
            Assert.DoesNotContain(diagnostics, d => d.Id == "AD0001");

            var tree = compilation.SyntaxTrees.First();
            string Show(string id, Microsoft.CodeAnalysis.Text.TextSpan span)
            {
                var line = tree.GetLineSpan(span).StartLinePosition;
                return $"{id} at ({line.Line + 1},{line.Character + 1}) '{tree.GetText().ToString(span)}'";
            }

            var actual = diagnostics.Where(AnalyzerRunner.IsModelDsl)
                .Select(d =>
                {
                    Assert.True(d.Location.SourceTree == tree, "Reported outside the test source: " + AnalyzerRunner.Describe(d));
                    return Show(d.Id, d.Location.SourceSpan);
                })
                .OrderBy(s => s, System.StringComparer.Ordinal).ToList();
            var wanted = expected.Select(e => Show(e.Id, e.Span)).OrderBy(s => s, System.StringComparer.Ordinal).ToList();
            Assert.Equal(wanted, actual);
            return diagnostics.Where(AnalyzerRunner.IsModelDsl).ToList();
        }
    }
}
