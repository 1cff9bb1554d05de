using System;
using System.Collections.Immutable;
using System.Globalization;
using System.Linq;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using ModelDsl.Generators.Emit;
using ModelDsl.Generators.Emit.Common;
using ModelDsl.Generators.Emit.TorchSharp;
using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Ir;
using ModelDsl.Generators.Ir.Families;
using ModelDsl.Generators.Parsing;
using ModelDsl.Generators.Spec;
using ModelDsl.Generators.Validation;

namespace ModelDsl.Generators
{
    /// <summary>
    /// Turns each model declaration into its op graph, then a model card and, for each backend whose runtime is
    /// referenced and that implements every op kind of the graph, that backend's code. Invalid declarations produce nothing
    /// here: the analyzers report why (diagnostics are not reported from generators, for incrementality and #pragma
    /// suppression).
    /// </summary>
    [Generator(LanguageNames.CSharp)]
    public sealed class ModelGenerator : IIncrementalGenerator
    {
        /// <inheritdoc />
        public void Initialize(IncrementalGeneratorInitializationContext context)
        {
            // Which backends' runtimes the compilation references (a bool per backend): only a reference change re-runs emitters.
            var backendsAvailable = context.CompilationProvider
                .Select((compilation, _) => BackendSupport.All.Select(b => compilation.GetTypeByMetadataName(b.RuntimeType) is not null).ToEquatableArray())
                .WithTrackingName(ModelGeneratorStepNames.BackendsAvailable);

            var graphs = DslGrammar.Families
                .Select(family => context.SyntaxProvider
                    .ForAttributeWithMetadataName(
                        DslGrammar.MetadataName(family),
                        predicate: static (node, _) => node is TypeDeclarationSyntax,
                        transform: static (attributeContext, token) => ModelParser.Parse((INamedTypeSymbol)attributeContext.TargetSymbol, token))
                    .WithTrackingName(ModelGeneratorStepNames.Parse)
                    .Where(static spec => ModelValidator.IsValid(spec))
                    .WithTrackingName(ModelGeneratorStepNames.Validate)
                    .Select(static (spec, _) => TransformerGraph.Build(spec))
                    .WithTrackingName(ModelGeneratorStepNames.BuildGraph))
                .ToArray();

            // Hint names are compared without case: the names of all models decide when one needs a suffix. Only a
            // renamed, added or removed model changes this list, so an edited model leaves the others cached.
            var names = graphs.Select(g => g.Select(static (graph, _) => graph.Spec.Type.FullName).Collect())
                .Aggregate((a, b) => a.Combine(b).Select(static (pair, _) => pair.Left.AddRange(pair.Right)))
                .Select(static (all, _) => all.ToEquatableArray())
                .WithTrackingName(ModelGeneratorStepNames.ModelNames);

            foreach (var models in graphs)
            {
                var named = models.Combine(names);

                context.RegisterSourceOutput(named, static (output, pair)
                    => output.AddSource(HintName(pair.Left.Spec.Type, pair.Right, "g.cs"), ModelCardEmitter.Emit(pair.Left)));

                context.RegisterSourceOutput(named.Combine(backendsAvailable), static (output, pair) =>
                {
                    var ((graph, all), available) = pair;
                    for (int i = 0; i < BackendSupport.All.Count; i++)
                    {
                        var backend = BackendSupport.All[i];
                        if (available[i] && !BackendSupport.Gaps(graph, backend).Any())
                            output.AddSource(HintName(graph.Spec.Type, all, backend.HintSuffix), backend.Emit(graph));
                    }
                });
            }
        }

        /// <summary>
        /// "Namespace.Outer.Model.TorchSharp.g.cs": readable, without the "@" of escaped keywords (invalid in hint
        /// names), and unique although Roslyn compares hint names without case: a model whose name differs from
        /// another's only in case gets a stable hash of its exact name ("Ns.gpt_1A2B3C4D.g.cs").
        /// </summary>
        internal static string HintName(TypeSpec type, EquatableArray<string> allModels, string suffix)
        {
            string full = type.FullName;
            string name = Sanitize(full);
            bool clash = allModels.Any(other => other != full && string.Equals(Sanitize(other), name, StringComparison.OrdinalIgnoreCase));
            return name + (clash ? "_" + Fnv1a(full).ToString("X8", CultureInfo.InvariantCulture) : "") + "." + suffix;
        }

        private static string Sanitize(string fullName)
        {
            var text = new StringBuilder(fullName.Length);
            foreach (char c in fullName.Replace("@", ""))
                text.Append(char.IsLetterOrDigit(c) || c is '.' or '_' ? c : '_');
            return text.ToString();
        }

        private static uint Fnv1a(string text)
        {
            uint hash = 2166136261;
            foreach (char c in text) hash = unchecked((hash ^ c) * 16777619);
            return hash;
        }
    }
}
