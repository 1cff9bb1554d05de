using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.Text;
using Xunit;

namespace ModelDsl.Analyzers.Tests.Infrastructure
{
    /// <summary>
    /// Applies a code fix the way the IDE does: the analyzer's diagnostic on a document of an <see cref="AdhocWorkspace"/>,
    /// the provider's actions, the chosen action's changed solution. The fixed text is compared exactly, and
    /// re-analysed: it must not have the diagnostic any more.
    /// </summary>
    internal static class CodeFixVerifier
    {
        /// <summary>The titles of the fixes offered for the single fixable diagnostic in <paramref name="source"/>.</summary>
        public static async Task<IReadOnlyList<string>> OfferedAsync(string source, CodeFixProvider provider)
        {
            var (_, _, actions) = await ActionsAsync(source, provider);
            return actions.Select(a => a.Title).ToList();
        }

        public static async Task VerifyAsync(string source, CodeFixProvider provider, string title, string expected)
        {
            var (document, diagnostic, actions) = await ActionsAsync(source, provider);
            var action = actions.SingleOrDefault(a => a.Title == title);
            Assert.True(action is not null,
                $"No fix titled '{title}'; offered: {string.Join(", ", actions.Select(a => "'" + a.Title + "'"))}");

            var operations = await action!.GetOperationsAsync(CancellationToken.None);
            var solution = operations.OfType<ApplyChangesOperation>().Single().ChangedSolution;
            var fixedDocument = solution.GetDocument(document.Id)!;
            var text = (await fixedDocument.GetTextAsync()).ToString();
            Assert.Equal(expected, text);

            var compilation = (await fixedDocument.Project.GetCompilationAsync())!;
            var after = await AnalyzerRunner.AnalyzeAsync(compilation);
            Assert.DoesNotContain(after, d => d.Id == diagnostic.Id);
        }

        private static async Task<(Document Document, Diagnostic Diagnostic, List<CodeAction> Actions)> ActionsAsync(
            string source, CodeFixProvider provider)
        {
            var workspace = new AdhocWorkspace();
            var project = workspace.AddProject(ProjectInfo.Create(
                ProjectId.CreateNewId(), VersionStamp.Create(), "Test", "Test", LanguageNames.CSharp,
                compilationOptions: TestCompilation.Options,
                parseOptions: TestCompilation.ParseOptions,
                metadataReferences: TestCompilation.References));
            var document = workspace.AddDocument(project.Id, "Test0.cs", SourceText.From(source));

            var compilation = (await document.Project.GetCompilationAsync())!;
            var diagnostics = (await AnalyzerRunner.AnalyzeAsync(compilation))
                .Where(d => provider.FixableDiagnosticIds.Contains(d.Id)).ToList();
            Assert.True(diagnostics.Count == 1,
                "Expected one fixable diagnostic, got:\n" + string.Join("\n", diagnostics.Select(AnalyzerRunner.Describe)));

            var actions = new List<CodeAction>();
            var context = new CodeFixContext(document, diagnostics[0], (action, _) => actions.Add(action), CancellationToken.None);
            await provider.RegisterCodeFixesAsync(context);
            return (document, diagnostics[0], actions);
        }
    }
}
