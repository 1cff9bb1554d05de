using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// What every generated decoder-only model (GPT family) is on the TorchSharp backend: logits from token ids,
    /// the LM loss, cached generation and Hugging Face safetensors I/O. Generated subclasses supply the layers.
    /// </summary>
    public abstract class CausalLanguageModel : nn.Module<Tensor, Tensor>
    {
        /// <summary>Loads TorchSharp first, so a broken native install fails with an explanation, not a TypeInitializationException.</summary>
        protected CausalLanguageModel(string name) : base(LoadedFirst(name)) { }

        private static string LoadedFirst(string name)
        {
            TorchSharpRuntime.EnsureLoaded();
            return name;
        }

        /// <summary>The compile-time model card (shapes, parameter count, FLOPs).</summary>
        public abstract ModelCard Card { get; }

        /// <summary>Creates an empty KV cache sized for this model.</summary>
        public abstract KvCache CreateCache(long batch);

        /// <summary>
        /// Logits [B, T, Vocab] for token ids [B, T]. With a cache, the ids continue the cached positions and
        /// their keys/values are appended to it.
        /// </summary>
        public abstract Tensor Forward(Tensor ids, KvCache? cache);

        /// <inheritdoc />
        public sealed override Tensor forward(Tensor ids) => Forward(ids, null);

        /// <summary>The target id that <see cref="Loss"/> skips (PyTorch's ignore_index).</summary>
        public const long IgnoredTarget = -100;

        /// <summary>Mean next-token cross-entropy of ids [B, T] against targets [B, T]; target -100 is ignored.</summary>
        public Tensor Loss(Tensor ids, Tensor targets)
        {
            if (!targets.shape.SequenceEqual(ids.shape) || targets.dtype != ScalarType.Int64)
                throw new ArgumentException(
                    $"Model '{Card.Name}': targets must be int64 with the shape of the ids [{string.Join(", ", ids.shape)}], but are {targets.dtype} [{string.Join(", ", targets.shape)}].", nameof(targets));
            using (var outside = targets.ne(IgnoredTarget).logical_and(targets.lt(0).logical_or(targets.ge(Card.Vocab))))
                if (outside.any().item<bool>())
                    throw new ArgumentOutOfRangeException(nameof(targets),
                        $"Model '{Card.Name}': a target id is outside the vocabulary [0, {Card.Vocab}) and is not the ignore index {IgnoredTarget}.");
            using var logits = Forward(ids, null);
            return nn.functional.cross_entropy(logits.view(-1, logits.shape[^1]), targets.view(-1));
        }

        /// <summary>
        /// Autoregressive sampling with a KV cache: the prompt is encoded once, then one token per step, until
        /// <paramref name="maxTokens"/> new tokens. When the context is full, the most recent half of it is
        /// re-encoded and generation goes on (nanoGPT crops to the context every step; re-encoding half a context
        /// once per half a context keeps the cache's speed at the cost of a shorter history just after a slide).
        /// </summary>
        public int[] Generate(IReadOnlyList<int> prompt, int maxTokens, SamplingOptions? options = null)
        {
            options ??= new SamplingOptions();
            if (prompt.Count == 0)
                throw new ArgumentException($"Model '{Card.Name}': the prompt must contain at least one token.", nameof(prompt));
            if (prompt.Count > Card.Context)
                throw new ArgumentException($"Model '{Card.Name}': the prompt has {prompt.Count} tokens, more than the context of {Card.Context}.", nameof(prompt));
            if (maxTokens < 0)
                throw new ArgumentOutOfRangeException(nameof(maxTokens), maxTokens, $"Model '{Card.Name}': maxTokens must be >= 0, not {maxTokens}.");
            CheckIds(prompt);
            var output = new List<int>(prompt);
            if (maxTokens == 0) return output.ToArray();

            bool wasTraining = training;
            eval();
            var device = parameters().GetEnumerator() is var e && e.MoveNext() ? e.Current.device : torch.CPU;
            using var generator = options.Seed is { } seed ? new Generator((ulong)seed, device) : null;
            using var cache = CreateCache(1);
            int keep = Math.Max(1, Card.Context / 2);
            try
            {
                using var _ = torch.no_grad();
                var pending = prompt.ToList();                       // tokens not yet in the cache
                for (int i = 0; i < maxTokens; i++)
                {
                    if (cache.Length + pending.Count > Card.Context)
                    {
                        cache.Clear();
                        pending = output.GetRange(output.Count - keep, keep);
                    }
                    using var scope = torch.NewDisposeScope();
                    var ids = torch.tensor(ToLongs(pending), device: device).unsqueeze(0);
                    var logits = Forward(ids, cache);
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

        /// <summary>Loads Hugging Face-named weights (with or without the "transformer." prefix).</summary>
        public void LoadSafetensors(string path) => ModuleWeights.Load(this, path, Card.Name, MapCheckpointName);

        /// <summary>Saves weights under Hugging Face names, atomically (a crash never leaves a half-written file).</summary>
        public void SaveSafetensors(string path, IReadOnlyDictionary<string, string>? metadata = null)
            => ModuleWeights.Save(this, path, metadata);

        /// <summary>
        /// Maps a checkpoint tensor name to this module's parameter name, or null to skip it. The default accepts
        /// both GPT2LMHeadModel ("transformer.h.0...") and GPT2Model ("h.0...") files and skips the causal-mask
        /// buffers old GPT-2 checkpoints carry.
        /// </summary>
        protected virtual string? MapCheckpointName(string name) => name;

        /// <summary>
        /// Rejects input the kernels would turn into a native crash or silent garbage: wrong rank or dtype, a
        /// sequence past the context, ids outside the vocabulary. Errors name the model, the tensor and the dimension.
        /// </summary>
        protected void CheckInput(Tensor ids, long offset)
        {
            if (ids.dim() != 2)
                throw new ArgumentException($"Model '{Card.Name}': token ids must be [batch, time], but have {ids.dim()} dimensions [{string.Join(", ", ids.shape)}].", nameof(ids));
            if (ids.dtype != ScalarType.Int64)
                throw new ArgumentException($"Model '{Card.Name}': token ids must be int64, but are {ids.dtype}.", nameof(ids));
            long time = ids.shape[1];
            if (time == 0 || offset + time > Card.Context)
                throw new ArgumentException(
                    $"Model '{Card.Name}': token ids dimension 1 (time) is {time}" + (offset > 0 ? $" after {offset} cached positions" : "") +
                    $"; it must be between 1 and the context of {Card.Context}" + (offset > 0 ? $" minus the cache ({Card.Context - offset})." : "."), nameof(ids));
            // One reduction and one host sync per call (a GPU would stall once, not twice); the slow path finds the id.
            using (var outside = ids.lt(0).logical_or_(ids.ge(Card.Vocab)))
            using (var any = outside.any())
            {
                if (any.item<bool>())
                {
                    using var bad = ids.masked_select(outside);
                    throw new ArgumentOutOfRangeException(nameof(ids),
                        $"Model '{Card.Name}': token id {bad[0].item<long>()} is outside the vocabulary [0, {Card.Vocab}).");
                }
            }
        }

        private void CheckIds(IReadOnlyList<int> ids)
        {
            for (int i = 0; i < ids.Count; i++)
                if ((uint)ids[i] >= (uint)Card.Vocab)
                    throw new ArgumentOutOfRangeException(nameof(ids),
                        $"Model '{Card.Name}': token id {ids[i]} at position {i} is outside the vocabulary [0, {Card.Vocab}).");
        }

        private static long[] ToLongs(IReadOnlyList<int> ids)
        {
            var result = new long[ids.Count];
            for (int i = 0; i < result.Length; i++) result[i] = ids[i];
            return result;
        }
    }
}
