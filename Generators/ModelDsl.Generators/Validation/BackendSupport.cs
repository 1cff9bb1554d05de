using System.Collections.Generic;
using ModelDsl.Generators.Spec;
using static ModelDsl.Generators.Validation.DiagnosticDescriptors;
using N = ModelDsl.Generators.Spec.DslGrammar;

namespace ModelDsl.Generators.Validation
{
    /// <summary>
    /// What each backend's emitter can generate today. A valid declaration outside it gets an MDSL0100 warning
    /// and no code for that backend, rather than code that silently ignores an attribute.
    /// </summary>
    internal static class BackendSupport
    {
        public const string TorchSharp = "TorchSharp";

        /// <summary>A type of the TorchSharp runtime: its presence in a compilation turns the TorchSharp backend on.</summary>
        public const string TorchSharpRuntimeType = "ModelDsl.TorchSharp.CausalLanguageModel";

        public static IEnumerable<Finding> TorchSharpGaps(ModelSpec spec)
        {
            Finding Gap(string feature, FindingSite site)
                => new(NotYetGenerated, site, new object?[] { TorchSharp, feature, spec.Name });

            var family = spec.Family.ToString();
            if (spec.Family != ModelFamily.Decoder)
            {
                yield return Gap($"the {family} family (only Decoder so far)", FindingSite.On(family));
                yield break;
            }
            if (spec.Positions.Kind != PositionKind.Learned)
                yield return Gap(spec.Positions.Kind + " positions", FindingSite.On(spec.Positions.Kind + "Positions"));
            if (spec.KvHeads != spec.Heads)
                yield return Gap("grouped-query attention (KvHeads)", FindingSite.On(N.Attention, "KvHeads"));
            if (spec.Attention.Window is not null)
                yield return Gap("sliding-window attention", FindingSite.On(N.Attention, "Window"));
            if (!spec.Attention.Bias)
                yield return Gap("bias-free attention", FindingSite.On(N.Attention, "Bias"));
            if (!spec.FeedForward.Bias)
                yield return Gap("bias-free feed-forward layers", FindingSite.On(N.FeedForward, "Bias"));
            if (spec.FeedForward.IsGated)
                yield return Gap(spec.FeedForward.Activation + " feed-forward layers", FindingSite.On(N.FeedForward, "Activation"));
            if (spec.Norm.Kind != NormKind.LayerNorm)
                yield return Gap("RmsNorm", FindingSite.On(spec.Norm.Placement == NormPlacement.Pre ? N.PreNorm : N.PostNorm, "Kind"));
            if (spec.Has(N.MixtureOfExperts))
                yield return Gap("mixture-of-experts layers", FindingSite.On(N.MixtureOfExperts));
            if (spec.Has(N.Lora))
                yield return Gap("LoRA adapters", FindingSite.On(N.Lora));
        }
    }
}
