using System;

namespace ModelDsl.Training
{
    /// <summary>Which part of a <see cref="TokenBatches"/> corpus to draw from.</summary>
    public enum DataSplit
    {
        /// <summary>The leading part, used for gradient steps.</summary>
        Train,
        /// <summary>The held-out tail, used only to measure the loss.</summary>
        Validation,
    }

    /// <summary>
    /// A tokenized corpus split into a training head and a validation tail (a contiguous tail, so no validation
    /// window overlaps a training window except across the one boundary), from which language-model batches are
    /// drawn: random windows of <c>T + 1</c> tokens give ids [B, T] and the targets [B, T] shifted by one.
    /// </summary>
    public sealed class TokenBatches
    {
        private readonly int[] tokens;
        private readonly int trainCount;

        /// <summary>Splits <paramref name="tokens"/>: the last <paramref name="validationFraction"/> is validation.</summary>
        /// <param name="tokens">Token ids; copied.</param>
        /// <param name="vocabSize">The model's vocabulary; every id must be below it.</param>
        /// <param name="validationFraction">Share of the tail held out, in [0, 1).</param>
        public TokenBatches(ReadOnlySpan<int> tokens, int vocabSize, double validationFraction = 0.1)
        {
            if (vocabSize <= 0) throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, "The vocabulary size must be positive.");
            if (!(validationFraction >= 0 && validationFraction < 1))
                throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, "The validation fraction must be in [0, 1).");
            for (int i = 0; i < tokens.Length; i++)
                if ((uint)tokens[i] >= (uint)vocabSize)
                    throw new ArgumentOutOfRangeException(nameof(tokens),
                        $"Token id {tokens[i]} at position {i} is outside the vocabulary [0, {vocabSize}).");
            this.tokens = tokens.ToArray();
            VocabSize = vocabSize;
            trainCount = tokens.Length - (int)Math.Round(tokens.Length * validationFraction);
        }

        /// <summary>The vocabulary size the ids were checked against.</summary>
        public int VocabSize { get; }

        /// <summary>The training tokens (the head of the corpus).</summary>
        public ReadOnlyMemory<int> TrainTokens => tokens.AsMemory(0, trainCount);

        /// <summary>The validation tokens (the tail of the corpus).</summary>
        public ReadOnlyMemory<int> ValidationTokens => tokens.AsMemory(trainCount);

        /// <summary>The tokens of <paramref name="split"/>.</summary>
        public ReadOnlyMemory<int> Tokens(DataSplit split) => split == DataSplit.Train ? TrainTokens : ValidationTokens;

        /// <summary>
        /// A deterministic stream of windows from <paramref name="split"/>: the same seed gives the same windows on
        /// every platform and .NET version (the generator is SplitMix64, not <see cref="Random"/>). Backends turn the
        /// filled id and target arrays into their own tensors (TorchSharp: <c>data.Sampler(...)</c>).
        /// </summary>
        /// <exception cref="ArgumentException">The split is shorter than one window of <paramref name="sequenceLength"/> + 1 tokens.</exception>
        public TokenWindowSampler Windows(DataSplit split, int batchSize, int sequenceLength, ulong seed)
            => new TokenWindowSampler(Tokens(split), split, batchSize, sequenceLength, seed);
    }

    /// <summary>
    /// Draws seeded random windows of <c>T + 1</c> tokens from one split and fills int64 id and target arrays
    /// [B, T] (row-major); see <see cref="TokenBatches.Windows"/>. Backend-neutral: no tensors here.
    /// </summary>
    public sealed class TokenWindowSampler
    {
        private readonly ReadOnlyMemory<int> tokens;
        private readonly SplitMix64 random;

        internal TokenWindowSampler(ReadOnlyMemory<int> tokens, DataSplit split, int batchSize, int sequenceLength, ulong seed)
        {
            if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be positive.");
            if (sequenceLength <= 0) throw new ArgumentOutOfRangeException(nameof(sequenceLength), sequenceLength, "The sequence length must be positive.");
            if (tokens.Length < sequenceLength + 1)
                throw new ArgumentException(
                    $"The {split.ToString().ToLowerInvariant()} split has {tokens.Length} tokens, fewer than one window of " +
                    $"sequence length {sequenceLength} + 1 (the shifted target). Use more data, a shorter sequence or a different split.");
            this.tokens = tokens;
            BatchSize = batchSize;
            SequenceLength = sequenceLength;
            Windows = tokens.Length - sequenceLength; // start positions 0 .. Length - T - 1
            random = new SplitMix64(seed);
        }

        /// <summary>Rows per batch (B).</summary>
        public int BatchSize { get; }

        /// <summary>Tokens per row (T).</summary>
        public int SequenceLength { get; }

        /// <summary>Elements of one id (or target) array: B * T.</summary>
        public long BatchElements => (long)BatchSize * SequenceLength;

        /// <summary>Distinct window start positions in the split.</summary>
        public int Windows { get; }

        /// <summary>The generator's state: saving and restoring it resumes the stream exactly where it was.</summary>
        public ulong State
        {
            get => random.State;
            set => random.State = value;
        }

        /// <summary>Start positions of the next <see cref="BatchSize"/> windows, advancing the stream (for inspection and tests).</summary>
        public int[] NextStarts()
        {
            var starts = new int[BatchSize];
            for (int b = 0; b < starts.Length; b++) starts[b] = random.NextIndex(Windows);
            return starts;
        }

        /// <summary>
        /// Fills the next batch, row-major [B, T]: <paramref name="ids"/>[b * T + t] is token t of window b and
        /// <paramref name="targets"/>[b * T + t] = ids[b * T + t + 1] of the same window, the last target being the
        /// token after the window. Both spans must hold exactly <see cref="BatchElements"/> values.
        /// </summary>
        /// <exception cref="ArgumentException">A span has the wrong length.</exception>
        public void Next(Span<long> ids, Span<long> targets)
        {
            if (ids.Length != BatchElements)
                throw new ArgumentException($"The id buffer holds {ids.Length} values; a batch of {BatchSize} x {SequenceLength} needs {BatchElements}.", nameof(ids));
            if (targets.Length != BatchElements)
                throw new ArgumentException($"The target buffer holds {targets.Length} values; a batch of {BatchSize} x {SequenceLength} needs {BatchElements}.", nameof(targets));
            var span = tokens.Span;
            int t = SequenceLength;
            for (int b = 0; b < BatchSize; b++)
            {
                int start = random.NextIndex(Windows);
                var window = span.Slice(start, t + 1);
                int row = b * t;
                for (int i = 0; i < t; i++)
                {
                    ids[row + i] = window[i];
                    targets[row + i] = window[i + 1];
                }
            }
        }
    }
}
