using System.Collections.Immutable;
using System.Composition;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using ModelDsl.Generators.Validation;

namespace ModelDsl.Analyzers.CodeFixes
{
    /// <summary>
    /// MDSL0017: adds the <c>partial</c> modifier to the model type and to every containing type that lacks it.
    /// Not offered for generic types, which <c>partial</c> alone would not make valid.
    /// </summary>
    [ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(MakePartialCodeFixProvider)), Shared]
    public sealed class MakePartialCodeFixProvider : CodeFixProvider
    {
        /// <inheritdoc />
        public override ImmutableArray<string> FixableDiagnosticIds { get; } =
            ImmutableArray.Create(DiagnosticDescriptors.NotPartial.Id);

        /// <inheritdoc />
        public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

        /// <inheritdoc />
        public override async Task RegisterCodeFixesAsync(CodeFixContext context)
        {
            var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
            if (root is null) return;

            foreach (var diagnostic in context.Diagnostics)
            {
                var declaration = root.FindToken(diagnostic.Location.SourceSpan.Start).Parent?.FirstAncestorOrSelf<TypeDeclarationSyntax>();
                if (declaration is null || declaration.Identifier.Span != diagnostic.Location.SourceSpan) continue;
                var chain = declaration.AncestorsAndSelf().OfType<TypeDeclarationSyntax>().ToList();
                if (chain.Any(d => d.TypeParameterList is not null) || chain.All(IsPartial)) continue;

                var title = chain.Skip(1).All(IsPartial)
                    ? $"Make '{declaration.Identifier.ValueText}' partial"
                    : $"Make '{declaration.Identifier.ValueText}' and its containing types partial";
                context.RegisterCodeFix(
                    CodeAction.Create(title, token => AddPartial(context.Document, declaration, token), equivalenceKey: "MDSL0017.partial"),
                    diagnostic);
            }
        }

        private static bool IsPartial(TypeDeclarationSyntax declaration)
            => declaration.Modifiers.Any(SyntaxKind.PartialKeyword);

        private static async Task<Document> AddPartial(Document document, TypeDeclarationSyntax declaration, CancellationToken token)
        {
            var root = await document.GetSyntaxRootAsync(token).ConfigureAwait(false);
            if (root is null) return document;
            var targets = declaration.AncestorsAndSelf().OfType<TypeDeclarationSyntax>().Where(d => !IsPartial(d));
            return document.WithSyntaxRoot(root.ReplaceNodes(targets, (_, rewritten) => WithPartial(rewritten)));
        }

        /// <summary>Appends <c>partial</c> as the last modifier (C# requires it right before the type keyword).</summary>
        private static TypeDeclarationSyntax WithPartial(TypeDeclarationSyntax declaration)
        {
            if (declaration.Modifiers.Count > 0)
                return declaration.WithModifiers(declaration.Modifiers.Add(
                    SyntaxFactory.Token(SyntaxKind.PartialKeyword).WithTrailingTrivia(SyntaxFactory.Space)));

            // No modifiers: "partial" takes over the keyword's indentation.
            var keyword = declaration.Keyword;
            var partial = SyntaxFactory.Token(keyword.LeadingTrivia, SyntaxKind.PartialKeyword, SyntaxFactory.TriviaList(SyntaxFactory.Space));
            return declaration
                .WithKeyword(keyword.WithLeadingTrivia(SyntaxFactory.TriviaList()))
                .WithModifiers(SyntaxFactory.TokenList(partial));
        }
    }
}
