using System.Linq;
using ModelDsl.Generators.Validation;
using Xunit;

namespace ModelDsl.Analyzers.Tests
{
    /// <summary>The descriptors themselves: ids, titles, help links, and that the analyzer declares them all.</summary>
    public sealed class DescriptorTests
    {
        public static TheoryData<string> Ids => new(DiagnosticDescriptors.All.Select(d => d.Id));

        [Fact]
        public void Ids_are_unique() =>
            Assert.Equal(DiagnosticDescriptors.All.Length, DiagnosticDescriptors.All.Select(d => d.Id).Distinct().Count());

        [Theory]
        [MemberData(nameof(Ids))]
        public void Every_descriptor_has_a_title_and_a_help_link_to_its_docs_section(string id)
        {
            var descriptor = DiagnosticDescriptors.All.Single(d => d.Id == id);
            Assert.Matches("^MDSL[0-9]{4}$", id);
            Assert.False(string.IsNullOrWhiteSpace(descriptor.Title.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Assert.EndsWith("docs/diagnostics.md#" + id.ToLowerInvariant(), descriptor.HelpLinkUri);
        }

        [Fact]
        public void The_analyzer_supports_every_descriptor() =>
            Assert.Equal(
                DiagnosticDescriptors.All.Select(d => d.Id).OrderBy(i => i),
                new ModelDeclarationAnalyzer().SupportedDiagnostics.Select(d => d.Id).OrderBy(i => i));

        [Fact]
        public void Every_descriptor_has_a_section_in_the_diagnostics_docs()
        {
            var docs = System.IO.File.ReadAllText(System.IO.Path.Combine(RepositoryRoot(), "docs", "diagnostics.md"));
            foreach (var descriptor in DiagnosticDescriptors.All)
            {
                // "## MDSL0001" alone on its line, so GitHub's anchor is exactly the help link's "#mdsl0001".
                Assert.Contains("\n## " + descriptor.Id + "\n", docs.Replace("\r\n", "\n"));
                Assert.Contains(descriptor.Title.ToString(System.Globalization.CultureInfo.InvariantCulture), docs);
            }
        }

        private static string RepositoryRoot()
        {
            var directory = new System.IO.DirectoryInfo(System.AppContext.BaseDirectory);
            while (directory is not null && !System.IO.File.Exists(System.IO.Path.Combine(directory.FullName, "Directory.Packages.props")))
                directory = directory.Parent;
            return directory?.FullName ?? throw new System.InvalidOperationException("Repository root not found.");
        }
    }
}
