using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Globalization;
using System.Linq;
using Microsoft.CodeAnalysis;
using ModelDsl.Generators.Model;
using static ModelDsl.Generators.Validation.DiagnosticDescriptors;
using N = ModelDsl.Generators.Model.AttributeNames;

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

            var families = spec.Attributes.Where(a => N.Families.Contains(a)).ToList();
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
            CheckPositions(spec, family, dimensionsOk, Report);
            CheckNorm(spec, Report);
            CheckApplicability(spec, family, Report);
            CheckMixtureOfExperts(spec, Report);
            if (dimensionsOk) CheckLora(spec, Report);
            if (spec.Has(N.Dropout) && !(spec.Dropout >= 0 && spec.Dropout < 1))
                Report(DropoutOutOfRange, FindingSite.On(N.Dropout, "Rate"), spec.Dropout);
            return findings.ToImmutable();
        }

        /// <summary>True when the model has no error finding: the generator's gate.</summary>
        public static bool IsValid(ModelSpec spec) => !Validate(spec).Any(f => f.IsError);

        /// <summary>The family attribute's name for a dimension ("Layers" is "EncoderLayers" in encoder-decoders).</summary>
        public static string ArgumentName(ModelFamily family, string dimension)
            => family == ModelFamily.EncoderDecoder && dimension == "Layers" ? "EncoderLayers" : dimension;

        private delegate void Reporter(DiagnosticDescriptor descriptor, FindingSite site, params object?[] args);

        private static void CheckConflicts(ModelSpec spec, Reporter report)
        {
            var positions = spec.Attributes.Where(a => a is N.LearnedPositions or N.SinusoidalPositions
                or N.RotaryPositions or N.RelativePositions).ToList();
            for (int i = 1; i < positions.Count; i++)
                report(Conflicting, FindingSite.On(positions[i]), positions[i], positions[0], "a model has one position scheme");
            if (spec.Has(N.PreNorm) && spec.Has(N.PostNorm))
            {
                var second = spec.Attributes.First(a => a is N.PreNorm or N.PostNorm) == N.PreNorm ? N.PostNorm : N.PreNorm;
                report(Conflicting, FindingSite.On(second), second, second == N.PreNorm ? N.PostNorm : N.PreNorm,
                    "blocks normalise either before or after each sub-block");
            }
        }

        private static bool CheckDimensions(ModelSpec spec, string family, Reporter report)
        {
            var required = new List<(string Argument, int Value)>();
            switch (spec.Family)
            {
                case ModelFamily.Decoder:
                case ModelFamily.Encoder:
                    required.Add(("Vocab", spec.Vocab));
                    required.Add(("Context", spec.Context));
                    required.Add(("Hidden", spec.Hidden));
                    required.Add(("Heads", spec.Heads));
                    required.Add(("Layers", spec.Layers));
                    break;
                case ModelFamily.EncoderDecoder:
                    required.Add(("Vocab", spec.Vocab));
                    required.Add(("Context", spec.Context));
                    required.Add(("Hidden", spec.Hidden));
                    required.Add(("Heads", spec.Heads));
                    required.Add(("EncoderLayers", spec.Layers));
                    required.Add(("DecoderLayers", spec.DecoderLayers));
                    break;
                case ModelFamily.VisionEncoder:
                    required.Add(("ImageSize", spec.ImageSize));
                    required.Add(("PatchSize", spec.PatchSize));
                    required.Add(("Channels", spec.Channels));
                    required.Add(("Hidden", spec.Hidden));
                    required.Add(("Heads", spec.Heads));
                    required.Add(("Layers", spec.Layers));
                    required.Add(("Classes", spec.Classes));
                    break;
            }

            bool ok = true;
            foreach (var (argument, value) in required)
            {
                if (!spec.Wrote(family, argument))
                {
                    report(MissingArgument, FindingSite.On(family), family, argument, Explain(argument));
                    ok = false;
                }
                else if (value < 1)
                {
                    report(NonPositive, FindingSite.On(family, argument), argument, 1, value);
                    ok = false;
                }
            }
            if (!ok) return false;

            bool explicitHeadDim = spec.Family == ModelFamily.EncoderDecoder && spec.Wrote(N.Attention, "HeadDim") && spec.HeadDim > 0;
            if (!explicitHeadDim && spec.Hidden % spec.Heads != 0)
            {
                report(HiddenNotDivisibleByHeads, FindingSite.On(family, "Heads"), spec.Hidden, spec.Heads,
                    ((double)spec.Hidden / spec.Heads).ToString("0.##", CultureInfo.InvariantCulture),
                    NearestDivisors(spec.Hidden, spec.Heads));
                return false;
            }

            if (spec.Family == ModelFamily.VisionEncoder && spec.ImageSize % spec.PatchSize != 0)
            {
                report(ImageNotDivisibleByPatch, FindingSite.On(family, "PatchSize"), spec.ImageSize, spec.PatchSize,
                    spec.ImageSize % spec.PatchSize, NearestDivisors(spec.ImageSize, spec.PatchSize));
                return false;
            }

            double parameters = EstimatedParameters(spec);
            if (parameters > MaxParameters)
            {
                report(ValueOutOfRange, FindingSite.On(family, "Hidden"), "The model size",
                    "at most 10^15 parameters (no real model is near; larger counts overflow shape arithmetic)",
                    parameters.ToString("0.##E+0", CultureInfo.InvariantCulture) + " parameters");
                return false;
            }
            return true;
        }

        private static string Explain(string argument) => argument switch
        {
            "Vocab" => "the number of token ids (rows of the embedding)",
            "Context" => "the longest sequence the model accepts",
            "Hidden" => "the model width (d_model)",
            "Heads" => "the number of attention heads",
            "Layers" => "the number of blocks",
            "EncoderLayers" => "the number of encoder blocks",
            "DecoderLayers" => "the number of decoder blocks; an encoder-decoder model needs a decoder",
            "ImageSize" => "the side of the input image in pixels",
            "PatchSize" => "the side of a patch in pixels",
            "Channels" => "the number of input channels (3 for RGB)",
            "Classes" => "the number of classes of the classification head",
            _ => "a positive value",
        };

        private static void CheckAttention(ModelSpec spec, string family, Reporter report)
        {
            if (spec.Wrote(N.Attention, "HeadDim"))
            {
                if (spec.HeadDim < 1)
                    report(NonPositive, FindingSite.On(N.Attention, "HeadDim"), "HeadDim", 1, spec.HeadDim);
                else if (spec.Family != ModelFamily.EncoderDecoder && spec.HeadDim != spec.Hidden / spec.Heads)
                    report(HeadDimMismatch, FindingSite.On(N.Attention, "HeadDim"), spec.HeadDim, spec.Hidden, spec.Heads,
                        spec.Hidden / spec.Heads, family);
            }

            if (spec.Wrote(N.Attention, "KvHeads"))
            {
                if (spec.KvHeads < 1)
                    report(NonPositive, FindingSite.On(N.Attention, "KvHeads"), "KvHeads", 1, spec.KvHeads);
                else if (spec.Heads % spec.KvHeads != 0)
                    report(KvHeadsNotDivisor, FindingSite.On(N.Attention, "KvHeads"), spec.KvHeads, spec.Heads,
                        string.Join(", ", Divisors(spec.Heads)));
            }

            if (spec.Wrote(N.Attention, "Window"))
            {
                if (spec.Window < 1)
                    report(NonPositive, FindingSite.On(N.Attention, "Window"), "Window", 1, spec.Window);
                else if (spec.Context > 0 && spec.Window >= spec.Context)
                    report(WindowCoversContext, FindingSite.On(N.Attention, "Window"), spec.Window, spec.Context);
            }

            if (spec.Wrote(N.FeedForward, "Inner") && spec.Inner < 1)
                report(NonPositive, FindingSite.On(N.FeedForward, "Inner"), "Inner", 1, spec.Inner);
            if (spec.Wrote(N.FeedForward, "Activation") && !Enum.IsDefined(typeof(Activation), spec.Activation))
                report(ValueOutOfRange, FindingSite.On(N.FeedForward, "Activation"), "Activation", "a named Activation value", (int)spec.Activation);
        }

        private static void CheckPositions(ModelSpec spec, string family, bool dimensionsOk, Reporter report)
        {
            if (spec.Has(N.RotaryPositions))
            {
                if (dimensionsOk && spec.EffectiveHeadDim % 2 != 0)
                {
                    var site = spec.Wrote(N.Attention, "HeadDim") ? FindingSite.On(N.Attention, "HeadDim") : FindingSite.On(N.RotaryPositions);
                    report(RotaryOddHeadDim, site, spec.EffectiveHeadDim);
                }
                if (!(spec.RotaryBase > 1) || double.IsInfinity(spec.RotaryBase))
                    report(ValueOutOfRange, FindingSite.On(N.RotaryPositions, "Base"), "Base", "a finite number greater than 1", spec.RotaryBase);
            }

            if (spec.Has(N.RelativePositions))
            {
                if (spec.RelativeBuckets < 4 || spec.RelativeBuckets % 2 != 0)
                    report(RelativeBucketsInvalid, FindingSite.On(N.RelativePositions, "Buckets"),
                        string.Format(CultureInfo.InvariantCulture,
                            "Buckets ({0}) must be even and at least 4: bidirectional attention splits them between the two directions, and each half needs exact and logarithmic buckets",
                            spec.RelativeBuckets));
                else if (spec.RelativeMaxDistance <= spec.RelativeBuckets / 2)
                    report(RelativeBucketsInvalid, FindingSite.On(N.RelativePositions, "MaxDistance"),
                        string.Format(CultureInfo.InvariantCulture,
                            "MaxDistance ({0}) must exceed Buckets / 2 ({1}), the offsets that get one bucket each; otherwise the logarithmic buckets are empty",
                            spec.RelativeMaxDistance, spec.RelativeBuckets / 2));
            }
        }

        private static void CheckNorm(ModelSpec spec, Reporter report)
        {
            var norm = spec.Has(N.PreNorm) ? N.PreNorm : spec.Has(N.PostNorm) ? N.PostNorm : null;
            if (norm is null) return;
            if (!(spec.NormEpsilon > 0) || double.IsInfinity(spec.NormEpsilon))
                report(EpsilonNotPositive, FindingSite.On(norm, "Epsilon"), spec.NormEpsilon);
            if (spec.Wrote(norm, "Kind") && !Enum.IsDefined(typeof(NormKind), spec.NormKind))
                report(ValueOutOfRange, FindingSite.On(norm, "Kind"), "Kind", "a named NormKind value", (int)spec.NormKind);
        }

        private static void CheckApplicability(ModelSpec spec, string family, Reporter report)
        {
            void Only(string attribute, bool applies, string why)
            {
                if (spec.Has(attribute) && !applies) report(NotApplicable, FindingSite.On(attribute), attribute, family, why);
            }

            Only(N.SegmentEmbeddings, spec.Family == ModelFamily.Encoder,
                "segment (token-type) embeddings belong to BERT-style encoders");
            Only(N.ClassificationHead, spec.Family == ModelFamily.Encoder,
                spec.Family == ModelFamily.VisionEncoder
                    ? "a vision encoder already has a classification head; set Classes on [VisionEncoder]"
                    : "the pooled classification head reads the first token of a bidirectional encoder");
            Only(N.TiedEmbeddings, spec.Family != ModelFamily.VisionEncoder,
                "a vision encoder has no token embedding to tie to its head");
            Only(N.RotaryPositions, spec.Family != ModelFamily.VisionEncoder,
                "rotary embeddings are one-dimensional; image patches need a two-dimensional scheme");

            if (spec.Has(N.SegmentEmbeddings) && spec.Family == ModelFamily.Encoder && spec.SegmentTypes < 1)
                report(NonPositive, FindingSite.On(N.SegmentEmbeddings, "Types"), "Types", 1, spec.SegmentTypes);
            if (spec.Has(N.ClassificationHead) && spec.Family == ModelFamily.Encoder && spec.Classes < 1)
            {
                if (spec.Wrote(N.ClassificationHead, "Classes"))
                    report(NonPositive, FindingSite.On(N.ClassificationHead, "Classes"), "Classes", 1, spec.Classes);
                else
                    report(MissingArgument, FindingSite.On(N.ClassificationHead), N.ClassificationHead, "Classes", Explain("Classes"));
            }
        }

        private static void CheckMixtureOfExperts(ModelSpec spec, Reporter report)
        {
            if (!spec.Has(N.MixtureOfExperts)) return;
            if (!spec.Wrote(N.MixtureOfExperts, "Experts"))
            {
                report(MissingArgument, FindingSite.On(N.MixtureOfExperts), N.MixtureOfExperts, "Experts", "the number of experts per MoE layer");
                return;
            }
            if (spec.Experts < 1)
            {
                report(NonPositive, FindingSite.On(N.MixtureOfExperts, "Experts"), "Experts", 1, spec.Experts);
                return;
            }
            if (spec.ExpertTopK < 1 || spec.ExpertTopK > spec.Experts)
                report(ExpertTopKOutOfRange, FindingSite.On(N.MixtureOfExperts, "TopK"), spec.ExpertTopK, spec.Experts);
            if (spec.TotalLayers > 0 && (spec.ExpertEvery < 1 || spec.ExpertEvery > spec.TotalLayers))
                report(MoeEveryOutOfRange, FindingSite.On(N.MixtureOfExperts, "Every"), spec.ExpertEvery, spec.TotalLayers);
            if (!(spec.AuxLossWeight >= 0) || double.IsInfinity(spec.AuxLossWeight))
                report(ValueOutOfRange, FindingSite.On(N.MixtureOfExperts, "AuxLossWeight"), "AuxLossWeight", "finite and not negative", spec.AuxLossWeight);
        }

        private static void CheckLora(ModelSpec spec, Reporter report)
        {
            if (!spec.Has(N.Lora)) return;
            int queryWidth = spec.Heads * spec.EffectiveHeadDim;
            int kvWidth = spec.EffectiveKvHeads * spec.EffectiveHeadDim;
            var projections = new List<(LoraTargets Target, string Name, int In, int Out)>
            {
                (LoraTargets.Query, "query", spec.Hidden, queryWidth),
                (LoraTargets.Key, "key", spec.Hidden, kvWidth),
                (LoraTargets.Value, "value", spec.Hidden, kvWidth),
                (LoraTargets.Output, "attention output", queryWidth, spec.Hidden),
                (LoraTargets.FeedForward, "feed-forward", spec.Hidden, spec.EffectiveInner),
            };
            var targeted = projections.Where(p => (spec.LoraTargets & p.Target) != 0).ToList();
            if (targeted.Count == 0 || ((int)spec.LoraTargets & ~31) != 0)
            {
                report(ValueOutOfRange, FindingSite.On(N.Lora, "Targets"), "Targets", "a non-empty combination of LoraTargets", spec.LoraTargets);
                return;
            }
            var smallest = targeted.OrderBy(p => Math.Min(p.In, p.Out)).First();
            int limit = Math.Min(smallest.In, smallest.Out);
            if (spec.LoraRank < 1 || spec.LoraRank > limit)
                report(LoraRankTooLarge, FindingSite.On(N.Lora, "Rank"), spec.LoraRank, limit,
                    $"{smallest.Name}, {smallest.In} x {smallest.Out}");
            if (!(spec.LoraAlpha > 0) || double.IsInfinity(spec.LoraAlpha))
                report(ValueOutOfRange, FindingSite.On(N.Lora, "Alpha"), "Alpha", "positive and finite", spec.LoraAlpha);
        }

        /// <summary>Declarations above this many parameters are rejected before any exact (long) shape arithmetic.</summary>
        private const double MaxParameters = 1e15;

        /// <summary>An upper estimate in floating point, so absurd declarations cannot overflow the exact count.</summary>
        private static double EstimatedParameters(ModelSpec spec)
        {
            double hidden = spec.Hidden, inner = spec.Inner > 0 ? spec.Inner : 4.0 * spec.Hidden;
            double headWidth = (double)spec.Heads * (spec.HeadDim > 0 ? spec.HeadDim : hidden / spec.Heads);
            double perLayer = 4 * hidden * headWidth + 3 * hidden * inner + 8 * hidden;
            double embeddings = ((double)spec.Vocab + spec.Context + (double)spec.PatchSize * spec.PatchSize * spec.Channels + spec.Classes) * hidden * 2;
            return embeddings + ((double)spec.Layers + spec.DecoderLayers) * perLayer * 2;
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
