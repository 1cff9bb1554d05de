using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Model;

namespace ModelDsl.Generators.Parsing
{
    /// <summary>
    /// Turns a declaration's DSL attributes into a <see cref="ModelSpec"/>. All symbol access happens here, once;
    /// nothing symbolic leaves. Never throws on half-typed code: an argument the compiler could not bind is
    /// treated as not written, and the validator then says what is missing.
    /// </summary>
    internal static class ModelParser
    {
        /// <summary>The defaults of the DSL's attribute properties (mirrors Dsl/ModelDsl; a test keeps them equal).</summary>
        internal static class Defaults
        {
            public const bool AttentionBias = true;
            public const int Activation = (int)Model.Activation.Gelu;
            public const bool FeedForwardBias = true;
            public const double RotaryBase = 10000.0;
            public const int RelativeBuckets = 32;
            public const int RelativeMaxDistance = 128;
            public const int NormKind = (int)Model.NormKind.LayerNorm;
            public const double NormEpsilon = 1e-5;
            public const int SegmentTypes = 2;
            public const int ExpertTopK = 2;
            public const int ExpertEvery = 1;
            public const double AuxLossWeight = 0.01;
            public const int LoraRank = 8;
            public const double LoraAlpha = 16;
            public const int LoraTargets = (int)(Model.LoraTargets.Query | Model.LoraTargets.Value);
        }

        public static bool IsDslAttribute(AttributeData attribute, out string simpleName)
        {
            simpleName = "";
            var type = attribute.AttributeClass;
            if (type is null || type.TypeKind == TypeKind.Error) return false;
            if (type.ContainingNamespace is not { Name: AttributeNames.Namespace, ContainingNamespace.IsGlobalNamespace: true })
                return false;
            const string suffix = "Attribute";
            if (!type.Name.EndsWith(suffix)) return false;
            simpleName = type.Name.Substring(0, type.Name.Length - suffix.Length);
            return AttributeNames.All.Contains(simpleName);
        }

        public static ModelSpec Parse(INamedTypeSymbol type, CancellationToken cancellationToken)
        {
            var attributes = new List<(string Name, AttributeData Data)>();
            foreach (var data in type.GetAttributes())
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (IsDslAttribute(data, out var name)) attributes.Add((name, data));
            }

            Arguments Args(string name)
                => new(attributes.Where(a => a.Name == name).Select(a => a.Data).FirstOrDefault());

            var families = AttributeNames.Families.Where(f => attributes.Any(a => a.Name == f)).ToList();
            var family = families.Count == 0 ? ModelFamily.None : (ModelFamily)System.Enum.Parse(typeof(ModelFamily), families[0]);
            var core = Args(families.Count == 0 ? "" : families[0]);

            var attention = Args(AttributeNames.Attention);
            var feedForward = Args(AttributeNames.FeedForward);
            var rotary = Args(AttributeNames.RotaryPositions);
            var relative = Args(AttributeNames.RelativePositions);
            bool Has(string name) => attributes.Any(a => a.Name == name);

            var norm = Has(AttributeNames.PreNorm) ? Args(AttributeNames.PreNorm)
                : Has(AttributeNames.PostNorm) ? Args(AttributeNames.PostNorm) : Args("");
            var placement = Has(AttributeNames.PreNorm) ? NormPlacement.Pre
                : Has(AttributeNames.PostNorm) ? NormPlacement.Post
                : family == ModelFamily.Encoder ? NormPlacement.Post : NormPlacement.Pre;
            var defaultNormKind = family == ModelFamily.EncoderDecoder ? (int)NormKind.RmsNorm : Defaults.NormKind;
            var defaultEpsilon = family switch
            {
                ModelFamily.Encoder or ModelFamily.VisionEncoder => 1e-12,
                ModelFamily.EncoderDecoder => 1e-6,
                _ => Defaults.NormEpsilon,
            };
            if (Has(AttributeNames.PreNorm) || Has(AttributeNames.PostNorm))
            {
                defaultNormKind = Defaults.NormKind;
                defaultEpsilon = Defaults.NormEpsilon;
            }

            var moe = Args(AttributeNames.MixtureOfExperts);
            var lora = Args(AttributeNames.Lora);

            return new ModelSpec(
                Type: ParseType(type),
                Attributes: attributes.Select(a => a.Name).ToEquatableArray(),
                WrittenArguments: attributes.SelectMany(a => WrittenArgumentNames(a.Name, a.Data)).ToEquatableArray(),
                Family: family,
                Vocab: core.Int("Vocab"),
                Context: core.Int("Context"),
                Hidden: core.Int("Hidden"),
                Heads: core.Int("Heads"),
                Layers: family == ModelFamily.EncoderDecoder ? core.Int("EncoderLayers") : core.Int("Layers"),
                DecoderLayers: core.Int("DecoderLayers"),
                ImageSize: core.Int("ImageSize"),
                PatchSize: core.Int("PatchSize"),
                Channels: core.Int("Channels"),
                Classes: family == ModelFamily.VisionEncoder
                    ? core.Int("Classes")
                    : Args(AttributeNames.ClassificationHead).Int("Classes"),
                KvHeads: attention.Int("KvHeads"),
                HeadDim: attention.Int("HeadDim"),
                Window: attention.Int("Window"),
                AttentionBias: attention.Bool("Bias", Defaults.AttentionBias),
                Inner: feedForward.Int("Inner"),
                Activation: (Activation)feedForward.Int("Activation", Defaults.Activation),
                FeedForwardBias: feedForward.Bool("Bias", Defaults.FeedForwardBias),
                Positions: ParsePositions(family, Has),
                RotaryBase: rotary.Double("Base", Defaults.RotaryBase),
                RelativeBuckets: relative.Int("Buckets", Defaults.RelativeBuckets),
                RelativeMaxDistance: relative.Int("MaxDistance", Defaults.RelativeMaxDistance),
                NormPlacement: placement,
                NormKind: (NormKind)norm.Int("Kind", defaultNormKind),
                NormEpsilon: norm.Double("Epsilon", defaultEpsilon),
                TiedEmbeddings: Has(AttributeNames.TiedEmbeddings),
                Dropout: Args(AttributeNames.Dropout).Double("Rate", 0.0, constructorIndex: 0),
                SegmentTypes: Has(AttributeNames.SegmentEmbeddings)
                    ? Args(AttributeNames.SegmentEmbeddings).Int("Types", Defaults.SegmentTypes) : 0,
                Experts: moe.Int("Experts"),
                ExpertTopK: moe.Int("TopK", Defaults.ExpertTopK),
                ExpertEvery: moe.Int("Every", Defaults.ExpertEvery),
                AuxLossWeight: moe.Double("AuxLossWeight", Defaults.AuxLossWeight),
                LoraRank: lora.Int("Rank", Defaults.LoraRank),
                LoraAlpha: lora.Double("Alpha", Defaults.LoraAlpha),
                LoraTargets: (LoraTargets)lora.Int("Targets", Defaults.LoraTargets));
        }

        private static IEnumerable<string> WrittenArgumentNames(string attribute, AttributeData data)
        {
            foreach (var pair in data.NamedArguments)
                if (pair.Value.Kind != TypedConstantKind.Error)
                    yield return attribute + "." + pair.Key;
            var parameters = data.AttributeConstructor?.Parameters ?? ImmutableArray<IParameterSymbol>.Empty;
            for (int i = 0; i < data.ConstructorArguments.Length && i < parameters.Length; i++)
                if (data.ConstructorArguments[i].Kind != TypedConstantKind.Error)
                    yield return attribute + "." + Capitalize(parameters[i].Name);
        }

        private static string Capitalize(string name)
            => name.Length == 0 ? name : char.ToUpperInvariant(name[0]) + name.Substring(1);

        private static PositionKind ParsePositions(ModelFamily family, System.Func<string, bool> has)
        {
            if (has(AttributeNames.LearnedPositions)) return PositionKind.Learned;
            if (has(AttributeNames.SinusoidalPositions)) return PositionKind.Sinusoidal;
            if (has(AttributeNames.RotaryPositions)) return PositionKind.Rotary;
            if (has(AttributeNames.RelativePositions)) return PositionKind.Relative;
            // The family's usual scheme, so the common case needs no attribute.
            return family == ModelFamily.EncoderDecoder ? PositionKind.Relative : PositionKind.Learned;
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

            var ns = type.ContainingNamespace is { IsGlobalNamespace: false } n ? n.ToDisplayString() : "";
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
                if (reference.GetSyntax() is Microsoft.CodeAnalysis.CSharp.Syntax.TypeDeclarationSyntax declaration
                    && !declaration.Modifiers.Any(m => m.IsKind(Microsoft.CodeAnalysis.CSharp.SyntaxKind.PartialKeyword)))
                    return false;
            }
            return true;
        }

        /// <summary>Reads one attribute's arguments by name; absent or unbound arguments give the default.</summary>
        private readonly struct Arguments
        {
            private readonly AttributeData? data;

            public Arguments(AttributeData? data) => this.data = data;

            public int Int(string name, int fallback = 0)
                => Value(name, -1) switch { int i => i, _ => fallback };

            public bool Bool(string name, bool fallback)
                => Value(name, -1) switch { bool b => b, _ => fallback };

            public double Double(string name, double fallback, int constructorIndex = -1)
                => Value(name, constructorIndex) switch
                {
                    double d => d,
                    float f => f,
                    int i => i,
                    _ => fallback,
                };

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
