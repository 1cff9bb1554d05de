using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Spec;
using A = ModelDsl.Generators.Spec.DslGrammar.Args;
using G = ModelDsl.Generators.Spec.DslGrammar;

namespace ModelDsl.Generators.Parsing
{
    /// <summary>
    /// Turns a declaration's DSL attributes into a <see cref="ModelSpec"/>. All symbol access happens here, once;
    /// nothing symbolic leaves. Never throws on half-typed code: an argument the compiler could not bind is
    /// treated as not written (null), and the validator then says what is missing.
    /// </summary>
    internal static class ModelParser
    {
        /// <summary>The norm epsilon a family's reference checkpoints use when no [PreNorm]/[PostNorm] is written.</summary>
        public static double FamilyEpsilon(ModelFamily family) => family switch
        {
            ModelFamily.Encoder or ModelFamily.VisionEncoder => 1e-12,
            ModelFamily.EncoderDecoder => 1e-6,
            _ => G.DefaultOf<double>(G.PreNorm, A.Epsilon),
        };

        public static bool IsDslAttribute(AttributeData attribute, out string simpleName)
        {
            simpleName = "";
            var type = attribute.AttributeClass;
            if (type is null || type.TypeKind == TypeKind.Error) return false;
            if (type.ContainingNamespace is not { Name: G.Namespace, ContainingNamespace.IsGlobalNamespace: true })
                return false;
            const string suffix = "Attribute";
            if (!type.Name.EndsWith(suffix)) return false;
            simpleName = type.Name.Substring(0, type.Name.Length - suffix.Length);
            return G.All.Contains(simpleName);
        }

        public static ModelSpec Parse(INamedTypeSymbol type, CancellationToken cancellationToken)
        {
            var attributes = new List<(string Name, AttributeData Data)>();
            foreach (var data in type.GetAttributes())
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (IsDslAttribute(data, out var name)) attributes.Add((name, data));
            }

            bool Has(string name) => attributes.Any(a => a.Name == name);
            Arguments Args(string name) => new(name, attributes.Where(a => a.Name == name).Select(a => a.Data).FirstOrDefault());

            string? familyName = attributes.Select(a => a.Name).FirstOrDefault(n => G.Families.Contains(n));
            var family = familyName switch
            {
                G.Decoder => ModelFamily.Decoder,
                G.Encoder => ModelFamily.Encoder,
                G.EncoderDecoder => ModelFamily.EncoderDecoder,
                G.VisionEncoder => ModelFamily.VisionEncoder,
                _ => ModelFamily.None,
            };
            var core = Args(familyName ?? "");

            var stacks = family switch
            {
                ModelFamily.Decoder => new StacksSpec(null, core.Int(A.Layers)),
                ModelFamily.EncoderDecoder => new StacksSpec(core.Int(A.EncoderLayers), core.Int(A.DecoderLayers)),
                ModelFamily.None => new StacksSpec(null, null),
                _ => new StacksSpec(core.Int(A.Layers), null),
            };

            var attention = Args(G.Attention);
            var feedForward = Args(G.FeedForward);
            var moe = Args(G.MixtureOfExperts);
            var lora = Args(G.Lora);

            return new ModelSpec(
                Type: ParseType(type),
                Family: family,
                Attributes: attributes.Select(a => a.Name).ToEquatableArray(),
                Dimensions: new DimensionsSpec(core.Int(A.Vocab), core.Int(A.Context), core.Int(A.Hidden), core.Int(A.Heads)),
                Stacks: stacks,
                Vision: new VisionSpec(core.Int(A.ImageSize), core.Int(A.PatchSize), core.Int(A.Channels)),
                Attention: new AttentionSpec(attention.Int(A.KvHeads), attention.Int(A.HeadDim), attention.Int(A.Window), attention.BoolOrDefault(A.Bias)),
                FeedForward: new FeedForwardSpec(feedForward.Int(A.Inner), (Activation)feedForward.IntOrDefault(A.Activation), feedForward.BoolOrDefault(A.Bias)),
                Positions: ParsePositions(family, Has, Args),
                Norm: ParseNorm(family, Has, Args),
                Embeddings: new EmbeddingsSpec(Has(G.TiedEmbeddings), Has(G.SegmentEmbeddings) ? Args(G.SegmentEmbeddings).IntOrDefault(A.Types) : null),
                Classifier: family == ModelFamily.VisionEncoder ? new ClassifierSpec(core.Int(A.Classes))
                    : Has(G.ClassificationHead) ? new ClassifierSpec(Args(G.ClassificationHead).Int(A.Classes)) : null,
                Experts: Has(G.MixtureOfExperts)
                    ? new ExpertsSpec(moe.Int(A.Experts), moe.IntOrDefault(A.TopK), moe.IntOrDefault(A.Every), moe.DoubleOrDefault(A.AuxLossWeight), moe.DoubleOrDefault(A.ZLossWeight))
                    : null,
                Lora: Has(G.Lora)
                    ? new LoraSpec(lora.IntOrDefault(A.Rank), lora.DoubleOrDefault(A.Alpha), (LoraTargets)lora.IntOrDefault(A.Targets))
                    : null,
                Dropout: Has(G.Dropout) ? Args(G.Dropout).Double(A.Rate, constructorIndex: 0) : null);
        }

        private delegate Arguments ArgumentsOf(string attribute);

        private static PositionsSpec ParsePositions(ModelFamily family, System.Func<string, bool> has, ArgumentsOf args)
        {
            // The first written scheme wins (a second one is MDSL0016); none written: the family's usual scheme.
            string? written = G.PositionAttributes.FirstOrDefault(has);
            var kind = written switch
            {
                G.LearnedPositions => PositionKind.Learned,
                G.SinusoidalPositions => PositionKind.Sinusoidal,
                G.RotaryPositions => PositionKind.Rotary,
                G.RelativePositions => PositionKind.Relative,
                _ => family == ModelFamily.EncoderDecoder ? PositionKind.Relative : PositionKind.Learned,
            };
            var rotary = args(G.RotaryPositions);
            var relative = args(G.RelativePositions);
            return new PositionsSpec(kind, rotary.DoubleOrDefault(A.Base), relative.IntOrDefault(A.Buckets), relative.IntOrDefault(A.MaxDistance));
        }

        private static NormSpec ParseNorm(ModelFamily family, System.Func<string, bool> has, ArgumentsOf args)
        {
            // Written: its values (the attribute's own defaults for what is not written). Not written: the family's
            // reference checkpoints (BERT post-norm 1e-12, ViT 1e-12, T5 RMS 1e-6, GPT-2 pre-norm 1e-5).
            if (has(G.PreNorm) || has(G.PostNorm))
            {
                string attribute = has(G.PreNorm) ? G.PreNorm : G.PostNorm;
                var norm = args(attribute);
                return new NormSpec(attribute == G.PreNorm ? NormPlacement.Pre : NormPlacement.Post,
                    (NormKind)norm.IntOrDefault(A.Kind), norm.DoubleOrDefault(A.Epsilon));
            }
            return new NormSpec(
                family == ModelFamily.Encoder ? NormPlacement.Post : NormPlacement.Pre,
                family == ModelFamily.EncoderDecoder ? NormKind.RmsNorm : NormKind.LayerNorm,
                FamilyEpsilon(family));
        }

        private static TypeSpec ParseType(INamedTypeSymbol type)
        {
            var containers = new List<string>();
            bool isPartial = IsPartial(type);
            bool isGeneric = type.IsGenericType;
            for (var outer = type.ContainingType; outer is not null; outer = outer.ContainingType)
            {
                containers.Insert(0, "partial " + Keyword(outer) + " " + outer.Name);
                isPartial &= IsPartial(outer);
                isGeneric |= outer.IsGenericType;
            }

            // Unescaped ("Ns.event", not "Ns.@event"): the emitters escape keywords where C# needs it.
            var ns = type.ContainingNamespace is { IsGlobalNamespace: false } n
                ? string.Join(".", n.ToDisplayString().Split('.').Select(s => s.TrimStart('@')))
                : "";
            return new TypeSpec(ns, type.Name, Keyword(type), isPartial, isGeneric, containers.ToEquatableArray());
        }

        private static string Keyword(INamedTypeSymbol type) => (type.IsRecord, type.IsValueType) switch
        {
            (true, true) => "record struct",
            (true, false) => "record",
            (false, true) => "struct",
            _ => type.TypeKind == TypeKind.Interface ? "interface" : "class",
        };

        private static bool IsPartial(INamedTypeSymbol type)
        {
            foreach (var reference in type.DeclaringSyntaxReferences)
            {
                if (reference.GetSyntax() is TypeDeclarationSyntax declaration
                    && !declaration.Modifiers.Any(m => m.IsKind(SyntaxKind.PartialKeyword)))
                    return false;
            }
            return true;
        }

        /// <summary>Reads one attribute's arguments by name; absent or unbound arguments are null (or the table's default).</summary>
        private readonly struct Arguments
        {
            private readonly string attribute;
            private readonly AttributeData? data;

            public Arguments(string attribute, AttributeData? data)
            {
                this.attribute = attribute;
                this.data = data;
            }

            public int? Int(string name) => Value(name, -1) is int i ? i : null;

            public int IntOrDefault(string name) => Int(name) ?? G.DefaultOf<int>(attribute, name);

            public bool BoolOrDefault(string name) => Value(name, -1) is bool b ? b : G.DefaultOf<bool>(attribute, name);

            public double? Double(string name, int constructorIndex = -1) => Value(name, constructorIndex) switch
            {
                double d => d,
                float f => f,
                int i => i,
                _ => null,
            };

            public double DoubleOrDefault(string name) => Double(name) ?? G.DefaultOf<double>(attribute, name);

            private object? Value(string name, int constructorIndex)
            {
                if (data is null) return null;
                foreach (var pair in data.NamedArguments)
                    if (pair.Key == name && pair.Value.Kind != TypedConstantKind.Error && pair.Value.Kind != TypedConstantKind.Array)
                        return pair.Value.Value;
                if (constructorIndex >= 0 && constructorIndex < data.ConstructorArguments.Length)
                {
                    var argument = data.ConstructorArguments[constructorIndex];
                    if (argument.Kind != TypedConstantKind.Error && argument.Kind != TypedConstantKind.Array)
                        return argument.Value;
                }
                return null;
            }
        }
    }
}
