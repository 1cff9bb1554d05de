using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using ModelDsl.Generators.Emit.Common;
using ModelDsl.Generators.Emit.TorchSharp;
using ModelDsl.Generators.Ir;
using ModelDsl.Generators.Spec;
using ModelDsl.Generators.Parsing;
using ModelDsl.Generators.Validation;

namespace ModelDsl.Generators
{
    /// <summary>
    /// Turns each model declaration into a model card and, when the TorchSharp runtime is referenced, TorchSharp
    /// modules. Invalid declarations produce nothing here: the analyzers report why (diagnostics are not
    /// reported from generators, for incrementality and #pragma suppression).
    /// </summary>
    [Generator(LanguageNames.CSharp)]
    public sealed class ModelGenerator : IIncrementalGenerator
    {
        /// <inheritdoc />
        public void Initialize(IncrementalGeneratorInitializationContext context)
        {
            var torchSharpAvailable = context.CompilationProvider
                .Select((compilation, _) => compilation.GetTypeByMetadataName(BackendSupport.TorchSharpRuntimeType) is not null)
                .WithTrackingName(ModelGeneratorStepNames.TorchSharpAvailable);

            foreach (var family in DslGrammar.Families)
            {
                var models = context.SyntaxProvider
                    .ForAttributeWithMetadataName(
                        DslGrammar.MetadataName(family),
                        predicate: static (node, _) => node is TypeDeclarationSyntax,
                        transform: static (attributeContext, token) => ModelParser.Parse((INamedTypeSymbol)attributeContext.TargetSymbol, token))
                    .WithTrackingName(ModelGeneratorStepNames.Parse)
                    .Where(static spec => ModelValidator.IsValid(spec) && IrBuilder.Supports(spec))
                    .WithTrackingName(ModelGeneratorStepNames.Validate)
                    .Select(static (spec, _) => IrBuilder.Build(spec))
                    .WithTrackingName(ModelGeneratorStepNames.BuildIr);

                context.RegisterSourceOutput(models, static (output, ir)
                    => output.AddSource(HintName(ir.Spec.Type, "g.cs"), ModelCardEmitter.Emit(ir)));

                context.RegisterSourceOutput(models.Combine(torchSharpAvailable), static (output, pair) =>
                {
                    var (ir, available) = pair;
                    if (available && !BackendSupport.TorchSharpGaps(ir.Spec).Any())
                        output.AddSource(HintName(ir.Spec.Type, "TorchSharp.g.cs"), TorchSharpEmitter.Emit(ir));
                });
            }
        }

        /// <summary>"Namespace.Outer.Model.TorchSharp.g.cs": unique per type, readable in the IDE.</summary>
        internal static string HintName(TypeSpec type, string suffix)
        {
            var parts = type.Containers.Select(c => c.Substring(c.LastIndexOf(' ') + 1)).Concat(new[] { type.Name });
            var name = string.Join(".", parts);
            return (type.Namespace.Length == 0 ? name : type.Namespace + "." + name) + "." + suffix;
        }
    }
}
