using System.Collections.Immutable;
using System.Composition;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using ModelDsl.Generators.Spec;
using ModelDsl.Generators.Parsing;
using ModelDsl.Generators.Validation;

namespace ModelDsl.Analyzers.CodeFixes
{
    /// <summary>
    /// Offers the nearest valid values, below and above, for a count that must divide another:
    /// MDSL0001 (Heads must divide Hidden), MDSL0003 (KvHeads must divide Heads) and MDSL0007 (PatchSize must
    /// divide ImageSize). E.g. <c>Hidden = 770, Heads = 12</c> gets "Use Heads = 11" and "Use Heads = 14".
    /// </summary>
    [ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(UseDivisorCodeFixProvider)), Shared]
    public sealed class UseDivisorCodeFixProvider : CodeFixProvider
    {
        /// <summary>Which argument each diagnostic is about, and the number it must divide.</summary>
        private static readonly ImmutableDictionary<string, (string Argument, System.Func<ModelSpec, (int Whole, int Wrong)> Values)> Rules =
            ImmutableDictionary.CreateRange(new[]
            {
                Rule(DiagnosticDescriptors.HiddenNotDivisibleByHeads.Id, DslGrammar.Args.Heads, spec => (spec.Hidden, spec.Heads)),
                Rule(DiagnosticDescriptors.KvHeadsNotDivisor.Id, DslGrammar.Args.KvHeads, spec => (spec.Heads, spec.KvHeads)),
                Rule(DiagnosticDescriptors.ImageNotDivisibleByPatch.Id, DslGrammar.Args.PatchSize, spec => (spec.ImageSize, spec.PatchSize)),
            });

        /// <inheritdoc />
        public override ImmutableArray<string> FixableDiagnosticIds { get; } = Rules.Keys.ToImmutableArray();

        /// <inheritdoc />
        public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

        /// <inheritdoc />
        public override async Task RegisterCodeFixesAsync(CodeFixContext context)
        {
            var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
            var semanticModel = await context.Document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false);
            if (root is null || semanticModel is null) return;

            foreach (var diagnostic in context.Diagnostics)
            {
                if (!Rules.TryGetValue(diagnostic.Id, out var rule)) continue;
                // The analyzer reports these at the argument's value; anything else (a fallback location) gets no fix.
                if (root.FindNode(diagnostic.Location.SourceSpan, getInnermostNodeForTie: true) is not ExpressionSyntax expression
                    || expression.Parent is not AttributeArgumentSyntax argument
                    || argument.NameEquals?.Name.Identifier.ValueText != rule.Argument
                    || argument.FirstAncestorOrSelf<TypeDeclarationSyntax>() is not { } declaration
                    || semanticModel.GetDeclaredSymbol(declaration, context.CancellationToken) is not { } type)
                    continue;

                var (whole, wrong) = rule.Values(ModelParser.Parse(type, context.CancellationToken));
                if (whole < 1 || wrong < 1) continue;
                var (below, above) = ModelValidator.NearestDivisorPair(whole, wrong);
                var candidates = new[] { (Value: below, Key: "below"), (Value: above, Key: "above") };
                foreach (var (value, key) in candidates)
                {
                    if (value == 0) continue;
                    var text = value.ToString(CultureInfo.InvariantCulture);
                    context.RegisterCodeFix(
                        CodeAction.Create(
                            $"Use {rule.Argument} = {text}",
                            token => Replace(context.Document, expression, value, token),
                            equivalenceKey: diagnostic.Id + "." + key),
                        diagnostic);
                }
            }
        }

        private static async Task<Document> Replace(Document document, ExpressionSyntax expression, int value, CancellationToken token)
        {
            var root = await document.GetSyntaxRootAsync(token).ConfigureAwait(false);
            if (root is null) return document;
            var literal = SyntaxFactory.LiteralExpression(SyntaxKind.NumericLiteralExpression, SyntaxFactory.Literal(value))
                .WithTriviaFrom(expression);
            return document.WithSyntaxRoot(root.ReplaceNode(expression, literal));
        }

        private static System.Collections.Generic.KeyValuePair<string, (string, System.Func<ModelSpec, (int, int)>)> Rule(
            string id, string argument, System.Func<ModelSpec, (int, int)> values)
            => new(id, (argument, values));
    }
}
