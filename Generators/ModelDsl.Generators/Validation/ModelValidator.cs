using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Globalization;
using System.Linq;
using Microsoft.CodeAnalysis;
using ModelDsl.Generators.Spec;
using static ModelDsl.Generators.Validation.DiagnosticDescriptors;
using A = ModelDsl.Generators.Spec.DslGrammar.Args;
using G = ModelDsl.Generators.Spec.DslGrammar;

namespace ModelDsl.Generators.Validation
{
    /// <summary>
    /// The shape rules of ModelDsl, pure and shared: analyzers report its findings at their sites, the generator
    /// emits nothing for a spec with an error. Each rule checks only what earlier rules did not already reject,
    /// so one mistake gives one diagnostic.
    /// </summary>
    internal static class ModelValidator
    {
        public static ImmutableArray<Finding> Validate(ModelSpec spec)
        {
            var findings = ImmutableArray.CreateBuilder<Finding>();
            void Report(DiagnosticDescriptor descriptor, FindingSite site, params object?[] args)
                => findings.Add(new Finding(descriptor, site, args.Select(Format).ToArray()));

            if (!spec.Type.IsPartial || spec.Type.IsGeneric)
                Report(NotPartial, FindingSite.TypeName, spec.Name);
            if (GeneratedMembers.TryGetValue(spec.Name, out var member))
                Report(ReservedName, FindingSite.TypeName, spec.Name, "the generator adds a member named '" + spec.Name + "' to the model (" + member + ")");
            else if (spec.Type.Namespace.Length == 0 && spec.Type.Containers.Count == 0 && RootNamespaces.Contains(spec.Name))
                Report(ReservedName, FindingSite.TypeName, spec.Name, "in the global namespace it would hide the namespace global::" + spec.Name + " that generated code uses");

            var families = spec.Attributes.Where(a => G.Families.Contains(a)).ToList();
            if (families.Count == 0)
            {
                Report(MissingFamily, FindingSite.On(spec.Attributes[0]), spec.Name);
                return findings.ToImmutable();
            }
            for (int i = 1; i < families.Count; i++)
                Report(Conflicting, FindingSite.On(families[i]), families[i], families[0], "a model has exactly one family");

            var family = families[0];
            CheckConflicts(spec, Report);
            bool dimensionsOk = CheckDimensions(spec, family, Report);
            if (dimensionsOk) CheckAttention(spec, family, Report);
            CheckFeedForward(spec, Report);
            CheckPositions(spec, dimensionsOk, Report);
            CheckNorm(spec, Report);
            CheckApplicability(spec, family, Report);
            CheckMixtureOfExperts(spec, Report);
            if (dimensionsOk) CheckLora(spec, Report);
            if (spec.Dropout is double rate && !(rate >= 0 && rate < 1))
                Report(DropoutOutOfRange, FindingSite.On(G.Dropout, A.Rate), rate);
            return findings.ToImmutable();
        }

        /// <summary>True when the model has no error finding: the generator's gate.</summary>
        public static bool IsValid(ModelSpec spec) => !Validate(spec).Any(f => f.IsError);

        /// <summary>The value a family attribute's required argument was given (null: not written).</summary>
        public static int? RequiredValue(ModelSpec spec, string argument) => argument switch
        {
            A.Vocab => spec.Dimensions.Vocab,
            A.Context => spec.Dimensions.Context,
            A.Hidden => spec.Dimensions.Hidden,
            A.Heads => spec.Dimensions.Heads,
            A.Layers => spec.Family == ModelFamily.Decoder ? spec.Stacks.DecoderLayers : spec.Stacks.EncoderLayers,
            A.EncoderLayers => spec.Stacks.EncoderLayers,
            A.DecoderLayers => spec.Stacks.DecoderLayers,
            A.ImageSize => spec.Vision.ImageSize,
            A.PatchSize => spec.Vision.PatchSize,
            A.Channels => spec.Vision.Channels,
            A.Classes => spec.Classifier?.Classes,
            _ => throw new ArgumentOutOfRangeException(nameof(argument), argument, "Not a family argument."),
        };

        /// <summary>The members the generator adds to a model type: a model cannot be named like one of them (CS0542).</summary>
        internal static readonly Dictionary<string, string> GeneratedMembers = new()
        {
            ["Card"] = "the compile-time model card",
            ["CreateTorchSharp"] = "the TorchSharp factory",
            ["TorchSharpModel"] = "the nested TorchSharp model class",
            ["CreateIlgpu"] = "the ILGPU factory",
            ["IlgpuModel"] = "the nested ILGPU model class",
        };

        /// <summary>The root namespaces generated code names with global::; a global type of that name would hide one.</summary>
        internal static readonly string[] RootNamespaces = { "System", "TorchSharp", "ModelDsl", "ILGPU" };

        private delegate void Reporter(DiagnosticDescriptor descriptor, FindingSite site, params object?[] args);

        private static void CheckConflicts(ModelSpec spec, Reporter report)
        {
            var positions = spec.Attributes.Where(a => G.PositionAttributes.Contains(a)).ToList();
            for (int i = 1; i < positions.Count; i++)
                report(Conflicting, FindingSite.On(positions[i]), positions[i], positions[0], "a model has one position scheme");
            if (spec.Has(G.PreNorm) && spec.Has(G.PostNorm))
            {
                var second = spec.Attributes.First(a => a is G.PreNorm or G.PostNorm) == G.PreNorm ? G.PostNorm : G.PreNorm;
                report(Conflicting, FindingSite.On(second), second, second == G.PreNorm ? G.PostNorm : G.PreNorm,
                    "blocks normalise either before or after each sub-block");
            }
        }

        private static bool CheckDimensions(ModelSpec spec, string family, Reporter report)
        {
            bool ok = true;
            foreach (var argument in G.RequiredBy(family))
            {
                var value = RequiredValue(spec, argument.Name);
                if (value is null)
                {
                    report(MissingArgument, FindingSite.On(family), family, argument.Name, argument.Meaning);
                    ok = false;
                }
                else if (value < 1)
                {
                    report(NonPositive, FindingSite.On(family, argument.Name), argument.Name, 1, value);
                    ok = false;
                }
            }
            if (!ok) return false;

            bool explicitHeadDim = spec.Family == ModelFamily.EncoderDecoder && spec.Attention.HeadDim > 0;
            if (!explicitHeadDim && spec.Hidden % spec.Heads != 0)
            {
                report(HiddenNotDivisibleByHeads, FindingSite.On(family, A.Heads), spec.Hidden, spec.Heads,
                    ((double)spec.Hidden / spec.Heads).ToString("0.##", CultureInfo.InvariantCulture),
                    NearestDivisors(spec.Hidden, spec.Heads));
                return false;
            }

            if (spec.Family == ModelFamily.VisionEncoder && spec.ImageSize % spec.PatchSize != 0)
            {
                int left = spec.ImageSize % spec.PatchSize;
                report(ImageNotDivisibleByPatch, FindingSite.On(family, A.PatchSize), spec.ImageSize, spec.PatchSize,
                    left == 1 ? "1 pixel" : left.ToString(CultureInfo.InvariantCulture) + " pixels",
                    NearestDivisors(spec.ImageSize, spec.PatchSize));
                return false;
            }

            double parameters = EstimatedParameters(spec);
            if (parameters > MaxParameters)
            {
                report(ValueOutOfRange, FindingSite.On(family, A.Hidden), "The model size",
                    "at most 10^15 parameters (no real model is near; larger counts overflow shape arithmetic)",
                    parameters.ToString("0.##E+0", CultureInfo.InvariantCulture) + " parameters");
                return false;
            }
            return true;
        }

        private static void CheckAttention(ModelSpec spec, string family, Reporter report)
        {
            var attention = spec.Attention;
            if (attention.HeadDim is int headDim)
            {
                if (headDim < 1)
                    report(NonPositive, FindingSite.On(G.Attention, A.HeadDim), A.HeadDim, 1, headDim);
                else if (spec.Family != ModelFamily.EncoderDecoder && headDim != spec.Hidden / spec.Heads)
                    report(HeadDimMismatch, FindingSite.On(G.Attention, A.HeadDim), headDim, spec.Hidden, spec.Heads,
                        spec.Hidden / spec.Heads, family);
            }

            if (attention.KvHeads is int kvHeads)
            {
                if (kvHeads < 1)
                    report(NonPositive, FindingSite.On(G.Attention, A.KvHeads), A.KvHeads, 1, kvHeads);
                else if (spec.Heads % kvHeads != 0)
                    report(KvHeadsNotDivisor, FindingSite.On(G.Attention, A.KvHeads), kvHeads, spec.Heads,
                        string.Join(", ", Divisors(spec.Heads)));
            }

            if (attention.Window is int window)
            {
                if (window < 1)
                    report(NonPositive, FindingSite.On(G.Attention, A.Window), A.Window, 1, window);
                else if (spec.Dimensions.Context is int context && window >= context)
                    report(WindowCoversContext, FindingSite.On(G.Attention, A.Window), window, spec.Context);
            }
        }

        private static void CheckFeedForward(ModelSpec spec, Reporter report)
        {
            if (spec.FeedForward.Inner is < 1)
                report(NonPositive, FindingSite.On(G.FeedForward, A.Inner), A.Inner, 1, spec.FeedForward.Inner);
            if (!Enum.IsDefined(typeof(Activation), spec.FeedForward.Activation))
                report(ValueOutOfRange, FindingSite.On(G.FeedForward, A.Activation), A.Activation, "a named Activation value", (int)spec.FeedForward.Activation);
        }

        private static void CheckPositions(ModelSpec spec, bool dimensionsOk, Reporter report)
        {
            var positions = spec.Positions;
            if (spec.Has(G.RotaryPositions))
            {
                if (dimensionsOk && spec.HeadDim > 0 && spec.HeadDim % 2 != 0)
                {
                    var site = spec.Attention.HeadDim is not null ? FindingSite.On(G.Attention, A.HeadDim) : FindingSite.On(G.RotaryPositions);
                    report(RotaryOddHeadDim, site, spec.HeadDim);
                }
                if (!(positions.RotaryBase > 1) || double.IsInfinity(positions.RotaryBase))
                    report(ValueOutOfRange, FindingSite.On(G.RotaryPositions, A.Base), A.Base, "a finite number greater than 1", positions.RotaryBase);
            }

            // Sinusoidal encodings are sin/cos pairs over the hidden channels.
            if (spec.Has(G.SinusoidalPositions) && dimensionsOk && spec.Hidden > 0 && spec.Hidden % 2 != 0)
                report(ValueOutOfRange, FindingSite.On(G.SinusoidalPositions), "Hidden with [SinusoidalPositions]", "even (the encodings are sin/cos pairs)", spec.Hidden);

            if (spec.Has(G.RelativePositions))
            {
                if (positions.RelativeBuckets < 4 || positions.RelativeBuckets % 2 != 0)
                    report(RelativeBucketsInvalid, FindingSite.On(G.RelativePositions, A.Buckets),
                        string.Format(CultureInfo.InvariantCulture,
                            "Buckets ({0}) must be even and at least 4: bidirectional attention splits them between the two directions, and each half needs exact and logarithmic buckets",
                            positions.RelativeBuckets));
                else if (positions.RelativeMaxDistance <= positions.RelativeBuckets / 2)
                    report(RelativeBucketsInvalid, FindingSite.On(G.RelativePositions, A.MaxDistance),
                        string.Format(CultureInfo.InvariantCulture,
                            "MaxDistance ({0}) must exceed Buckets / 2 ({1}), the offsets that get one bucket each; otherwise the logarithmic buckets are empty",
                            positions.RelativeMaxDistance, positions.RelativeBuckets / 2));
            }
        }

        private static void CheckNorm(ModelSpec spec, Reporter report)
        {
            var norm = spec.Has(G.PreNorm) ? G.PreNorm : spec.Has(G.PostNorm) ? G.PostNorm : null;
            if (norm is null) return;
            if (!(spec.Norm.Epsilon > 0) || double.IsInfinity(spec.Norm.Epsilon))
                report(EpsilonNotPositive, FindingSite.On(norm, A.Epsilon), spec.Norm.Epsilon);
            if (!Enum.IsDefined(typeof(NormKind), spec.Norm.Kind))
                report(ValueOutOfRange, FindingSite.On(norm, A.Kind), A.Kind, "a named NormKind value", (int)spec.Norm.Kind);
        }

        private static void CheckApplicability(ModelSpec spec, string family, Reporter report)
        {
            void Only(string attribute, bool applies, string why)
            {
                if (spec.Has(attribute) && !applies) report(NotApplicable, FindingSite.On(attribute), attribute, family, why);
            }

            Only(G.SegmentEmbeddings, spec.Family == ModelFamily.Encoder,
                "segment (token-type) embeddings belong to BERT-style encoders");
            Only(G.ClassificationHead, spec.Family == ModelFamily.Encoder,
                spec.Family == ModelFamily.VisionEncoder
                    ? "a vision encoder already has a classification head; set Classes on [VisionEncoder]"
                    : "the pooled classification head reads the first token of a bidirectional encoder");
            Only(G.TiedEmbeddings, spec.Family != ModelFamily.VisionEncoder,
                "a vision encoder has no token embedding to tie to its head");
            Only(G.RotaryPositions, spec.Family != ModelFamily.VisionEncoder,
                "rotary embeddings are one-dimensional; image patches need a two-dimensional scheme");

            if (spec.Family != ModelFamily.Encoder) return;
            if (spec.Embeddings.SegmentTypes is < 1)
                report(NonPositive, FindingSite.On(G.SegmentEmbeddings, A.Types), A.Types, 1, spec.Embeddings.SegmentTypes);
            if (spec.Has(G.ClassificationHead))
            {
                if (spec.Classifier?.Classes is not int classes)
                    report(MissingArgument, FindingSite.On(G.ClassificationHead), G.ClassificationHead, A.Classes,
                        G.Argument(G.ClassificationHead, A.Classes).Meaning);
                else if (classes < 1)
                    report(NonPositive, FindingSite.On(G.ClassificationHead, A.Classes), A.Classes, 1, classes);
            }
        }

        private static void CheckMixtureOfExperts(ModelSpec spec, Reporter report)
        {
            if (spec.Experts is not { } moe) return;
            if (moe.Experts is not int experts)
            {
                report(MissingArgument, FindingSite.On(G.MixtureOfExperts), G.MixtureOfExperts, A.Experts,
                    G.Argument(G.MixtureOfExperts, A.Experts).Meaning);
                return;
            }
            if (experts < 1)
            {
                report(NonPositive, FindingSite.On(G.MixtureOfExperts, A.Experts), A.Experts, 1, experts);
                return;
            }
            if (moe.TopK < 1 || moe.TopK > experts)
                report(ExpertTopKOutOfRange, FindingSite.On(G.MixtureOfExperts, A.TopK), moe.TopK, experts);
            int layers = spec.Stacks.Total;
            if (layers > 0 && (moe.Every < 1 || moe.Every > layers))
                report(MoeEveryOutOfRange, FindingSite.On(G.MixtureOfExperts, A.Every), moe.Every, layers);
            if (!(moe.AuxLossWeight >= 0) || double.IsInfinity(moe.AuxLossWeight))
                report(ValueOutOfRange, FindingSite.On(G.MixtureOfExperts, A.AuxLossWeight), A.AuxLossWeight, "finite and not negative", moe.AuxLossWeight);
            if (!(moe.ZLossWeight >= 0) || double.IsInfinity(moe.ZLossWeight))
                report(ValueOutOfRange, FindingSite.On(G.MixtureOfExperts, A.ZLossWeight), A.ZLossWeight, "finite and not negative", moe.ZLossWeight);
        }

        private static void CheckLora(ModelSpec spec, Reporter report)
        {
            if (spec.Lora is not { } lora) return;
            int queryWidth = spec.Heads * spec.HeadDim;
            int kvWidth = spec.KvHeads * spec.HeadDim;
            var projections = new List<(LoraTargets Target, string Name, int In, int Out)>
            {
                (LoraTargets.Query, "query", spec.Hidden, queryWidth),
                (LoraTargets.Key, "key", spec.Hidden, kvWidth),
                (LoraTargets.Value, "value", spec.Hidden, kvWidth),
                (LoraTargets.Output, "attention output", queryWidth, spec.Hidden),
                (LoraTargets.FeedForward, "feed-forward", spec.Hidden, spec.Inner),
            };
            var targeted = projections.Where(p => (lora.Targets & p.Target) != 0).ToList();
            if (targeted.Count == 0 || ((int)lora.Targets & ~31) != 0)
            {
                report(ValueOutOfRange, FindingSite.On(G.Lora, A.Targets), A.Targets, "a non-empty combination of LoraTargets", lora.Targets);
                return;
            }
            var smallest = targeted.OrderBy(p => Math.Min(p.In, p.Out)).First();
            int limit = Math.Min(smallest.In, smallest.Out);
            if (lora.Rank < 1 || lora.Rank > limit)
                report(LoraRankTooLarge, FindingSite.On(G.Lora, A.Rank), lora.Rank, limit,
                    $"{smallest.Name}, {smallest.In} x {smallest.Out}");
            if (!(lora.Alpha > 0) || double.IsInfinity(lora.Alpha))
                report(ValueOutOfRange, FindingSite.On(G.Lora, A.Alpha), A.Alpha, "positive and finite", lora.Alpha);
        }

        /// <summary>Declarations above this many parameters are rejected before any exact (long) shape arithmetic.</summary>
        private const double MaxParameters = 1e15;

        /// <summary>An upper estimate in floating point, so absurd declarations cannot overflow the exact count.</summary>
        private static double EstimatedParameters(ModelSpec spec)
        {
            double hidden = spec.Hidden, inner = spec.FeedForward.Inner ?? 4.0 * spec.Hidden;
            double headWidth = (double)spec.Heads * (spec.Attention.HeadDim ?? hidden / spec.Heads);
            double experts = spec.Experts?.Experts is int e && e > 0 ? e : 1;
            double perLayer = 4 * hidden * headWidth + 3 * hidden * inner * experts + 8 * hidden;
            double embeddings = ((double)spec.Vocab + spec.Context + (double)spec.PatchSize * spec.PatchSize * spec.Channels + spec.Classes) * hidden * 2;
            return embeddings + (double)spec.Stacks.Total * perLayer * 2;
        }

        /// <summary>Divisors of n, in order. Pairs d with n / d up to sqrt(n): O(sqrt n), and no overflow at int.MaxValue.</summary>
        internal static IEnumerable<int> Divisors(int n)
        {
            var large = new List<int>();
            for (int d = 1; d <= n / d; d++)
            {
                if (n % d != 0) continue;
                yield return d;
                if (d != n / d) large.Add(n / d);
            }
            for (int i = large.Count - 1; i >= 0; i--) yield return large[i];
        }

        /// <summary>The divisors of n nearest below and above a wrong value (0 where there is none): the code fixes' choices.</summary>
        internal static (int Below, int Above) NearestDivisorPair(int n, int wrong)
        {
            var divisors = Divisors(n).ToList();
            return (divisors.Where(d => d < wrong).DefaultIfEmpty(0).Max(), divisors.Where(d => d > wrong).DefaultIfEmpty(0).Min());
        }

        /// <summary>The divisors of n nearest below and above a wrong value, e.g. "11 or 14".</summary>
        internal static string NearestDivisors(int n, int wrong)
        {
            var (below, above) = NearestDivisorPair(n, wrong);
            if (below == 0) return above.ToString(CultureInfo.InvariantCulture);
            if (above == 0) return below.ToString(CultureInfo.InvariantCulture);
            return string.Format(CultureInfo.InvariantCulture, "{0} or {1}", below, above);
        }

        private static object? Format(object? value) => value switch
        {
            double d => d.ToString("R", CultureInfo.InvariantCulture),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => value,
        };
    }
}
