using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using TorchSharp;
using ModelDsl.TorchSharp.Training;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// A generated decoder-only language model (GPT-2, Llama, Mistral, Mixtral) on TorchSharp: logits from token ids,
    /// the next-token loss (plus the mixture-of-experts auxiliary loss), cached generation and safetensors I/O.
    /// Generated subclasses supply the layers.
    /// </summary>
    public abstract class CausalLanguageModel : TaskModel<TokenBatch>
    {
        protected CausalLanguageModel(ModelCard card) : base(card) { }

        /// <summary>The graph's forward function: logits [B, T, Vocab] for token ids [B, T] (generated).</summary>
        protected abstract Tensor Logits(Tensor ids, ForwardState state);

        /// <summary>
        /// Logits [B, T, Vocab] for token ids [B, T], with the auxiliary loss of a mixture-of-experts model. With a cache,
        /// the ids continue the cached positions and their keys and values are appended to it.
        /// </summary>
        public ModelOutput Forward(Tensor ids, KvCache? cache = null)
        {
            CheckIds(ids, "token ids", cache?.Length ?? 0);
            cache?.CheckFits(Card.Name, ids.shape[0]);
            var state = new ForwardState(cache, training);
            var logits = Logits(ids, state);
            cache?.Advance((int)ids.shape[1]);
            return Output(logits, state);
        }

        /// <summary>Creates an empty KV cache for <paramref name="batch"/> sequences, on the model's device and dtype.</summary>
        public KvCache CreateCache(long batch)
            => new(Card.Name, Card.DecoderLayers, batch, Card.KvHeads, Card.Context, Card.HeadDim, Device, DType);

        /// <summary>
        /// Mean next-token cross-entropy of ids [B, T] against targets [B, T] (target -100 is ignored), plus the weighted
        /// auxiliary loss of the same pass when the model has experts.
        /// </summary>
        public Tensor Loss(Tensor ids, Tensor targets)
        {
            CheckTargets(targets, ids.shape, Card.Vocab, "targets");
            var output = Forward(ids);
            return WithAuxiliary(TaskLoss(output.Logits, targets), output);
        }

        /// <inheritdoc />
        public override Tensor Loss(TokenBatch batch) => Loss(batch.Ids, batch.Targets);

        /// <summary>
        /// Autoregressive sampling with a KV cache: the prompt is encoded once, then one token per step, until
        /// <paramref name="maxTokens"/> new tokens. When the context is full, the most recent half of it is
        /// re-encoded and generation goes on (nanoGPT crops to the context every step; re-encoding half a context
        /// once per half a context keeps the cache's speed at the cost of a shorter history just after a slide).
        /// </summary>
        /// <exception cref="OperationCanceledException"><paramref name="cancellation"/> was signalled (checked before every token).</exception>
        public int[] Generate(IReadOnlyList<int> prompt, int maxTokens, SamplingOptions? options = null, CancellationToken cancellation = default)
        {
            options ??= new SamplingOptions();
            if (prompt.Count == 0)
                throw new ArgumentException($"Model '{Card.Name}': the prompt must contain at least one token.", nameof(prompt));
            if (prompt.Count > Card.Context)
                throw new ArgumentException($"Model '{Card.Name}': the prompt has {prompt.Count} tokens, more than the context of {Card.Context}.", nameof(prompt));
            if (maxTokens < 0)
                throw new ArgumentOutOfRangeException(nameof(maxTokens), maxTokens, $"Model '{Card.Name}': maxTokens must be >= 0, not {maxTokens}.");
            for (int i = 0; i < prompt.Count; i++)
                if ((uint)prompt[i] >= (uint)Card.Vocab)
                    throw new ArgumentOutOfRangeException(nameof(prompt),
                        $"Model '{Card.Name}': token id {prompt[i]} at position {i} is outside the vocabulary [0, {Card.Vocab}).");
            var output = new List<int>(prompt);
            if (maxTokens == 0) return output.ToArray();

            bool wasTraining = training;
            eval();
            var device = Device;
            using var generator = options.Seed is { } seed ? new Generator((ulong)seed, device) : null;
            using var cache = CreateCache(1);
            int keep = Math.Max(1, Card.Context / 2);
            try
            {
                using var _ = torch.no_grad();
                var pending = prompt.ToList();                       // tokens not yet in the cache
                for (int i = 0; i < maxTokens; i++)
                {
                    cancellation.ThrowIfCancellationRequested();
                    if (cache.Length + pending.Count > Card.Context)
                    {
                        cache.Clear();
                        pending = output.GetRange(output.Count - keep, keep);
                    }
                    using var scope = torch.NewDisposeScope();
                    var ids = torch.tensor(pending.Select(t => (long)t).ToArray(), device: device).unsqueeze(0);
                    var logits = Forward(ids, cache).Logits;
                    var token = Sampler.Sample(logits.select(1, logits.shape[1] - 1), options, generator);
                    int id = (int)token[0].item<long>();
                    output.Add(id);
                    pending = new List<int> { id };
                }
            }
            finally
            {
                train(wasTraining);
            }
            return output.ToArray();
        }
    }
}
