using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Diagnostics;
using ModelDsl.Generators.Emit;
using ModelDsl.Generators.Ir.Families;
using ModelDsl.Generators.Parsing;
using ModelDsl.Generators.Validation;

namespace ModelDsl.Analyzers
{
    /// <summary>
    /// Reports every shape and declaration rule of <see cref="ModelValidator"/> on the exact attribute argument,
    /// and what a referenced backend cannot generate yet (MDSL0100).
    /// </summary>
    [DiagnosticAnalyzer(LanguageNames.CSharp)]
    public sealed class ModelDeclarationAnalyzer : DiagnosticAnalyzer
    {
        /// <inheritdoc />
        public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics { get; } =
            DiagnosticDescriptors.All.ToImmutableArray();

        /// <inheritdoc />
        public override void Initialize(AnalysisContext context)
        {
            context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
            context.EnableConcurrentExecution();
            context.RegisterCompilationStartAction(start =>
            {
                var backends = BackendSupport.All.Where(b => start.Compilation.GetTypeByMetadataName(b.RuntimeType) is not null).ToArray();
                start.RegisterSymbolAction(symbolContext => Analyze(symbolContext, backends), SymbolKind.NamedType);
            });
        }

        private static void Analyze(SymbolAnalysisContext context, BackendSupport.Backend[] backends)
        {
            var type = (INamedTypeSymbol)context.Symbol;
            if (!type.GetAttributes().Any(a => ModelParser.IsDslAttribute(a, out _))) return;

            var spec = ModelParser.Parse(type, context.CancellationToken);
            var findings = ModelValidator.Validate(spec);
            foreach (var finding in findings)
                context.ReportDiagnostic(Diagnostic.Create(finding.Descriptor, Locate(type, finding.Site, context), finding.MessageArguments));

            if (backends.Length == 0 || findings.Any(f => f.IsError)) return;
            var graph = TransformerGraph.Build(spec);
            foreach (var backend in backends)
                foreach (var gap in BackendSupport.Gaps(graph, backend))
                    context.ReportDiagnostic(Diagnostic.Create(gap.Descriptor, Locate(type, gap.Site, context), gap.MessageArguments));
        }

        /// <summary>
        /// The narrowest syntax for a site: the argument's value, else the attribute, else the type's name.
        /// Positional arguments are found by their constructor parameter's name (Dropout(0.1) is "Rate").
        /// </summary>
        internal static Location Locate(INamedTypeSymbol type, FindingSite site, SymbolAnalysisContext context)
        {
            var fallback = type.Locations.FirstOrDefault() ?? Location.None;
            if (site.Attribute is null) return fallback;

            foreach (var data in type.GetAttributes())
            {
                if (!ModelParser.IsDslAttribute(data, out var name) || name != site.Attribute) continue;
                if (data.ApplicationSyntaxReference?.GetSyntax(context.CancellationToken) is not AttributeSyntax syntax)
                    return fallback;
                if (site.Argument is null || syntax.ArgumentList is null) return syntax.GetLocation();

                var arguments = syntax.ArgumentList.Arguments;
                var named = arguments.FirstOrDefault(a => a.NameEquals?.Name.Identifier.ValueText == site.Argument);
                if (named is not null) return named.Expression.GetLocation();

                var parameters = data.AttributeConstructor?.Parameters ?? ImmutableArray<IParameterSymbol>.Empty;
                for (int i = 0; i < parameters.Length && i < arguments.Count; i++)
                {
                    var argument = arguments[i];
                    if (argument.NameEquals is not null) break;
                    var parameterName = argument.NameColon?.Name.Identifier.ValueText ?? parameters[i].Name;
                    if (string.Equals(parameterName, site.Argument, System.StringComparison.OrdinalIgnoreCase))
                        return argument.Expression.GetLocation();
                }
                return syntax.GetLocation();
            }
            return fallback;
        }
    }
}
