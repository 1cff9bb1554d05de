using System;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// How to pick the next token from logits. The constructor (and <c>with</c>) validates every value.
    /// </summary>
    /// <param name="Temperature">Divides the logits; 0 means greedy (argmax). Must be finite and >= 0.</param>
    /// <param name="TopK">Keep only the K most likely tokens; 0 turns it off. Must be >= 0.</param>
    /// <param name="TopP">Nucleus sampling: keep the smallest set of most likely tokens whose probability sums to at
    /// least TopP (always at least the most likely one); 1 turns it off. Must be in (0, 1].</param>
    /// <param name="Seed">Seed of the random generator that callers such as Generate create; null = nondeterministic.</param>
    /// <param name="Vocabulary">Sample only ids below this: for a tokenizer smaller than the model's (padded) vocabulary,
    /// whose extra rows must never be emitted. Null = every id. Must be >= 1.</param>
    public sealed record SamplingOptions(float Temperature = 1.0f, int TopK = 0, float TopP = 1.0f, int? Seed = null, int? Vocabulary = null)
    {
        public int? Vocabulary { get; init => field = CheckVocabulary(value); } = CheckVocabulary(Vocabulary);

        public float Temperature { get; init => field = CheckTemperature(value); } = CheckTemperature(Temperature);

        public int TopK { get; init => field = CheckTopK(value); } = CheckTopK(TopK);

        public float TopP { get; init => field = CheckTopP(value); } = CheckTopP(TopP);

        /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> if any value is out of range (already done on construction).</summary>
        public void Validate()
        {
            CheckTemperature(Temperature);
            CheckTopK(TopK);
            CheckTopP(TopP);
            CheckVocabulary(Vocabulary);
        }

        private static int? CheckVocabulary(int? value)
            => value is null or >= 1 ? value
                : throw new ArgumentOutOfRangeException(nameof(Vocabulary), value, "Vocabulary must be >= 1 (null = every id).");

        private static float CheckTemperature(float value)
            => float.IsFinite(value) && value >= 0 ? value
                : throw new ArgumentOutOfRangeException(nameof(Temperature), value,
                    "Sampling temperature must be a finite number >= 0 (0 = greedy argmax).");

        private static int CheckTopK(int value)
            => value >= 0 ? value
                : throw new ArgumentOutOfRangeException(nameof(TopK), value, "TopK must be >= 0 (0 = keep all tokens).");

        private static float CheckTopP(float value)
            => value > 0 && value <= 1 ? value
                : throw new ArgumentOutOfRangeException(nameof(TopP), value, "TopP must be in (0, 1] (1 = keep all tokens).");
    }

    /// <summary>Token sampling from logits: temperature, then top-k, then top-p (nucleus), then a multinomial draw.</summary>
    public static class Sampler
    {
        // TopP arrives as a float (0.8f = 0.800000011920929): a cumulative probability within this of TopP counts as
        // reaching it, so that e.g. probabilities [0.5, 0.3, ...] with TopP = 0.8 keep exactly the first two.
        private const double TopPTolerance = 1e-6;

        /// <summary>
        /// Samples one token id per row of <paramref name="logits"/> [B, V]; returns int64 ids [B] on the logits' device.
        /// With Temperature 0 the result is the argmax (no randomness, the generator is not used).
        /// </summary>
        /// <exception cref="ArgumentException">The logits are not [B, V] with V >= 1, or a row has no finite maximum (NaN / all -inf).</exception>
        public static Tensor Sample(Tensor logits, SamplingOptions options, Generator? generator)
        {
            ArgumentNullException.ThrowIfNull(logits);
            ArgumentNullException.ThrowIfNull(options);
            options.Validate();
            if (logits.dim() != 2 || logits.shape[1] < 1)
                throw new ArgumentException(
                    $"Sampler: logits must have shape [batch, vocab] with vocab >= 1, not [{string.Join(", ", logits.shape)}].", nameof(logits));
            if (!logits.is_floating_point())
                throw new ArgumentException($"Sampler: logits must be floating point, not {logits.dtype}.", nameof(logits));

            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            // Ids keep their meaning: the kept columns are the first ones.
            if (options.Vocabulary is int limit && limit < logits.shape[1]) logits = logits.narrow(-1, 0, limit);
            long vocab = logits.shape[1];
            // Every path, greedy included: argmax of a NaN row is a silent 0.
            if (logits.isnan().any().item<bool>())
                throw new ArgumentException("Sampler: the logits contain NaN (the model's weights or input diverged); there is nothing to sample.", nameof(logits));

            if (options.Temperature == 0)
                return logits.argmax(-1).to(ScalarType.Int64).MoveToOuterDisposeScope();

            // Work in float64: cumulative sums over a large vocabulary stay exact enough for top-p.
            var x = logits.detach().to(ScalarType.Float64) / options.Temperature;

            if (options.TopK > 0 && options.TopK < vocab)
            {
                var (values, _) = torch.topk(x, options.TopK, dim: -1);
                var threshold = values.narrow(-1, options.TopK - 1, 1);
                x = x.masked_fill(x < threshold, double.NegativeInfinity);
            }

            if (options.TopP < 1)
            {
                var (sorted, order) = torch.sort(x, dim: -1, descending: true);
                var probs = sorted.softmax(-1);
                var before = probs.cumsum(-1) - probs; // probability mass of the tokens ranked above each one
                // The most likely token is always kept, however small TopP is (the tolerance would drop it below 1e-6).
                var drop = (before >= options.TopP - TopPTolerance).index_fill_(-1, torch.tensor(0L, device: x.device), false);
                var kept = sorted.masked_fill(drop, double.NegativeInfinity);
                x = torch.full_like(x, double.NegativeInfinity).scatter(-1, order, kept);
            }

            var p = x.softmax(-1);
            if (p.isnan().any().item<bool>())
                throw new ArgumentException("Sampler: a row of logits has no finite maximum (every entry -inf, or +inf).", nameof(logits));
            var ids = torch.multinomial(p, 1, replacement: false, generator: generator).squeeze(-1);
            return ids.MoveToOuterDisposeScope();
        }
    }
}
