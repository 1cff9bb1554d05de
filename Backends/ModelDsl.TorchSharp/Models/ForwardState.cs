using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// What one forward pass threads through the generated layer methods: the key/value cache and its offset, whether
    /// dropout is on, and what mixture-of-experts layers report (router logits for the load-balancing loss, tokens
    /// per expert). Create one per pass; the model's public Forward does.
    /// </summary>
    public sealed class ForwardState
    {
        private readonly List<(Tensor Logits, Tensor Selected, RouterLossOptions Options)> routing = new();
        private readonly SortedDictionary<int, Tensor> expertLoad = new();

        /// <summary>A state for a pass without cache, in evaluation mode unless <paramref name="training"/>.</summary>
        public ForwardState(KvCache? cache = null, bool training = false)
        {
            Cache = cache;
            Offset = cache?.Length ?? 0;
            Training = training;
        }

        /// <summary>The cache this pass reads and extends, if any.</summary>
        public KvCache? Cache { get; }

        /// <summary>Positions already cached: the position of this pass's first token.</summary>
        public long Offset { get; }

        /// <summary>Whether dropout is active.</summary>
        public bool Training { get; }

        /// <summary>Records one mixture-of-experts layer's router logits [Tokens, Experts] and chosen experts [Tokens, TopK].</summary>
        public void AddRouting(Tensor logits, Tensor selected, RouterLossOptions options)
            => routing.Add((logits, selected, options));

        /// <summary>Records how many tokens each expert of <paramref name="layer"/> received ([Experts], int64).</summary>
        public void AddExpertLoad(int layer, Tensor tokensPerExpert) => expertLoad[layer] = tokensPerExpert;

        /// <summary>Tokens per expert, by layer (empty for a dense model).</summary>
        public IReadOnlyDictionary<int, Tensor> ExpertLoad => expertLoad;

        /// <summary>
        /// The weighted auxiliary loss of this pass, or null for a dense model: the load-balancing loss over all
        /// mixture-of-experts layers at once (Hugging Face's load_balancing_loss_func, see <see cref="Routing"/>)
        /// times its weight, plus the router z-loss times its weight.
        /// </summary>
        public Tensor? AuxiliaryLoss()
        {
            if (routing.Count == 0) return null;
            var options = routing[0].Options;
            var logits = torch.cat(routing.Select(r => r.Logits).ToArray(), 0);
            var selected = torch.cat(routing.Select(r => r.Selected).ToArray(), 0);
            var loss = Routing.LoadBalancingLoss(logits, selected, options.Experts) * options.Weight;
            if (options.ZWeight > 0) loss = loss + Routing.ZLoss(logits) * options.ZWeight;
            return loss;
        }
    }

    /// <summary>The constants of a model's router loss.</summary>
    public sealed record RouterLossOptions(int Experts, double Weight, double ZWeight);
}
