using System;
using System.Collections.Generic;
using System.Linq;
using ModelDsl.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Training
{
    /// <summary>
    /// An encoder task's data: tokenized sequences of different lengths in a training and a validation split. A batch
    /// is <see cref="TrainingOptions.BatchSize"/> sequences drawn with replacement (seeded, <see cref="SplitMix64"/>),
    /// padded with the pad id to the longest of them, with the padding mask (true for real tokens). Every sequence must
    /// fit <see cref="TrainingOptions.SequenceLength"/> (encode with truncation, e.g.
    /// <c>BertCharTokenizer.EncodeSequence</c>).
    /// </summary>
    public abstract class SequenceData<TBatch> : ITaskData<TBatch>
    {
        private readonly IReadOnlyList<int[]> train;
        private readonly IReadOnlyList<int[]> validation;

        /// <exception cref="ArgumentException">A sequence is null or empty.</exception>
        protected SequenceData(IReadOnlyList<int[]> train, IReadOnlyList<int[]> validation, int padId)
        {
            this.train = Checked(train, nameof(train));
            this.validation = Checked(validation, nameof(validation));
            PadId = padId;
        }

        private static IReadOnlyList<int[]> Checked(IReadOnlyList<int[]> sequences, string what)
        {
            ArgumentNullException.ThrowIfNull(sequences, what);
            for (int i = 0; i < sequences.Count; i++)
                if (sequences[i] is not { Length: > 0 })
                    throw new ArgumentException($"Sequence {i} of the {what} split is null or empty.", what);
            return sequences;
        }

        /// <summary>The id that fills the positions after a sequence's end.</summary>
        public int PadId { get; }

        /// <summary>The sequences of <paramref name="split"/>.</summary>
        public IReadOnlyList<int[]> Sequences(DataSplit split) => split == DataSplit.Train ? train : validation;

        public string ItemName => "sequences";

        public long Items(DataSplit split) => Sequences(split).Count;

        public bool CanStream(DataSplit split, TrainingOptions options) => Sequences(split).Count > 0;

        /// <exception cref="ArgumentException">The split is empty or a sequence is longer than the options' SequenceLength.</exception>
        public IBatchStream<TBatch> Stream(DataSplit split, TrainingOptions options, ulong seed, Device? device)
        {
            ArgumentNullException.ThrowIfNull(options);
            var sequences = Sequences(split);
            string name = split.ToString().ToLowerInvariant();
            if (sequences.Count == 0) throw new ArgumentException($"The {name} split has no sequences.", nameof(split));
            for (int i = 0; i < sequences.Count; i++)
                if (sequences[i].Length > options.SequenceLength)
                    throw new ArgumentException(
                        $"Sequence {i} of the {name} split has {sequences[i].Length} tokens, more than TrainingOptions.SequenceLength {options.SequenceLength}; truncate it when encoding.", nameof(options));
            var random = new SplitMix64(seed);
            var make = Batches(split, seed ^ 0x6D61_736BUL, device); // its own stream: masks do not shift with the draws
            return new Draws(options.BatchSize, () =>
            {
                var indices = new int[options.BatchSize];
                for (int b = 0; b < indices.Length; b++) indices[b] = (int)random.NextBelow((ulong)sequences.Count);
                return make(indices);
            });
        }

        /// <summary>Makes the batches of one stream from the indices of its sequences; <paramref name="seed"/> seeds any randomness beyond the draw.</summary>
        protected abstract Func<int[], TBatch> Batches(DataSplit split, ulong seed, Device? device);

        /// <summary>
        /// The sequences at <paramref name="indices"/> of <paramref name="split"/> as int64 ids [B, T] padded with
        /// <see cref="PadId"/> to the longest (T), and the padding mask [B, T] (true for real tokens).
        /// </summary>
        public (Tensor Ids, Tensor Mask) Padded(DataSplit split, IReadOnlyList<int> indices, Device? device)
        {
            var (ids, mask, shape) = PaddedArrays(split, indices);
            return (OnDevice(torch.tensor(ids, shape), device), OnDevice(torch.tensor(mask, shape), device));
        }

        /// <summary><see cref="Padded"/> as row-major arrays and their shape [B, T].</summary>
        protected (long[] Ids, bool[] Mask, long[] Shape) PaddedArrays(DataSplit split, IReadOnlyList<int> indices)
        {
            ArgumentNullException.ThrowIfNull(indices);
            var sequences = Sequences(split);
            int time = indices.Max(i => sequences[i].Length);
            var ids = new long[indices.Count * time];
            var mask = new bool[ids.Length];
            Array.Fill(ids, PadId);
            for (int b = 0; b < indices.Count; b++)
            {
                var sequence = sequences[indices[b]];
                for (int t = 0; t < sequence.Length; t++) ids[b * time + t] = sequence[t];
                mask.AsSpan(b * time, sequence.Length).Fill(true);
            }
            return (ids, mask, new long[] { indices.Count, time });
        }

        protected static Tensor OnDevice(Tensor t, Device? device) => device is null || device.type == DeviceType.CPU ? t : t.to(device);

        private sealed class Draws : IBatchStream<TBatch>
        {
            private readonly Func<TBatch> next;

            public Draws(int batchSize, Func<TBatch> next)
            {
                ItemsPerBatch = batchSize;
                this.next = next;
            }

            public long ItemsPerBatch { get; }

            public TBatch Next() => next();
        }
    }

    /// <summary>
    /// Masked-language-model batches: padded sequences masked by BERT's recipe (<see cref="TokenMasker"/>), targets the
    /// original ids at the chosen positions and -100 elsewhere (padding and special tokens are never chosen). Each
    /// stream masks with its own seeded masker, so validation batches (the trainer's fixed seed) are the same at every
    /// evaluation, and training batches differ from epoch to epoch as BERT's dynamic masking does.
    /// </summary>
    public sealed class MaskedLanguageData : SequenceData<MaskedBatch>
    {
        private readonly MaskingRecipe recipe;
        private readonly int maskId;
        private readonly int vocabSize;
        private readonly int[] specialIds;

        /// <param name="train">Training sequences, each with its special tokens ([CLS] ... [SEP]).</param>
        /// <param name="validation">Validation sequences.</param>
        /// <param name="vocabSize">The tokenizer's vocabulary: random replacements are drawn from its non-special ids.</param>
        /// <param name="padId">The padding id (must be among <paramref name="specialIds"/>).</param>
        /// <param name="maskId">The [MASK] id (must be among <paramref name="specialIds"/>).</param>
        /// <param name="specialIds">Ids never chosen or drawn: padding, [CLS], [SEP], [MASK], ...</param>
        /// <param name="recipe">The masking rates (default: BERT's 15%, 80/10/10).</param>
        public MaskedLanguageData(IReadOnlyList<int[]> train, IReadOnlyList<int[]> validation, int vocabSize, int padId, int maskId,
            IReadOnlyList<int> specialIds, MaskingRecipe? recipe = null) : base(train, validation, padId)
        {
            ArgumentNullException.ThrowIfNull(specialIds);
            if (!specialIds.Contains(padId))
                throw new ArgumentException($"The pad id {padId} must be one of the special ids, or padding could be chosen for prediction.", nameof(padId));
            this.recipe = recipe ?? new MaskingRecipe();
            this.maskId = maskId;
            this.vocabSize = vocabSize;
            this.specialIds = specialIds.ToArray();
            _ = NewMasker(0); // checks the ids and the recipe now rather than at the first batch
            foreach (var split in new[] { DataSplit.Train, DataSplit.Validation })
            {
                var sequences = Sequences(split);
                for (int i = 0; i < sequences.Count; i++)
                    foreach (int id in sequences[i])
                        if ((uint)id >= (uint)vocabSize)
                            throw new ArgumentOutOfRangeException(split == DataSplit.Train ? nameof(train) : nameof(validation),
                                $"Token id {id} in sequence {i} of the {split.ToString().ToLowerInvariant()} split is outside the vocabulary [0, {vocabSize}).");
            }
        }

        /// <summary>The masking rates.</summary>
        public MaskingRecipe Recipe => recipe;

        /// <summary>A masker with this data's vocabulary and special ids.</summary>
        public TokenMasker NewMasker(ulong seed) => new(recipe, maskId, vocabSize, specialIds, seed);

        protected override Func<int[], MaskedBatch> Batches(DataSplit split, ulong seed, Device? device)
        {
            var masker = NewMasker(seed);
            return indices =>
            {
                var (ids, mask, shape) = PaddedArrays(split, indices);
                var input = new long[ids.Length];
                var targets = new long[ids.Length];
                int time = (int)shape[1];
                for (int b = 0; b < indices.Length; b++) // padding is special: copied through, never chosen
                    masker.Apply(ids.AsSpan(b * time, time), input.AsSpan(b * time, time), targets.AsSpan(b * time, time));
                return new MaskedBatch(OnDevice(torch.tensor(input, shape), device), OnDevice(torch.tensor(targets, shape), device), null,
                                       OnDevice(torch.tensor(mask, shape), device));
            };
        }
    }

    /// <summary>Sequence-classification batches: padded sequences and one label per sequence in [0, classes).</summary>
    public sealed class SequenceClassificationData : SequenceData<ClassificationBatch>
    {
        private readonly IReadOnlyList<int> trainLabels;
        private readonly IReadOnlyList<int> validationLabels;

        /// <exception cref="ArgumentException">Labels and sequences differ in number, or a label is outside [0, classes).</exception>
        public SequenceClassificationData(IReadOnlyList<int[]> train, IReadOnlyList<int> trainLabels, IReadOnlyList<int[]> validation,
            IReadOnlyList<int> validationLabels, int classes, int padId) : base(train, validation, padId)
        {
            if (classes <= 0) throw new ArgumentOutOfRangeException(nameof(classes), classes, "There must be at least one class.");
            this.trainLabels = CheckedLabels(trainLabels, train.Count, classes, nameof(trainLabels));
            this.validationLabels = CheckedLabels(validationLabels, validation.Count, classes, nameof(validationLabels));
            Classes = classes;
        }

        private static IReadOnlyList<int> CheckedLabels(IReadOnlyList<int> labels, int count, int classes, string what)
        {
            ArgumentNullException.ThrowIfNull(labels, what);
            if (labels.Count != count)
                throw new ArgumentException($"{what} has {labels.Count} labels for {count} sequences.", what);
            for (int i = 0; i < labels.Count; i++)
                if ((uint)labels[i] >= (uint)classes)
                    throw new ArgumentOutOfRangeException(what, $"{what}[{i}] = {labels[i]} is outside the classes [0, {classes}).");
            return labels;
        }

        public int Classes { get; }

        /// <summary>The labels of <paramref name="split"/>, by sequence.</summary>
        public IReadOnlyList<int> Labels(DataSplit split) => split == DataSplit.Train ? trainLabels : validationLabels;

        /// <summary>Every example of <paramref name="split"/> once, in order, in batches of at most <paramref name="batchSize"/> (for evaluation).</summary>
        public IEnumerable<ClassificationBatch> InOrder(DataSplit split, int batchSize, Device? device = null)
        {
            if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be positive.");
            int count = Sequences(split).Count;
            for (int start = 0; start < count; start += batchSize)
                yield return Batch(split, Enumerable.Range(start, Math.Min(batchSize, count - start)).ToArray(), device);
        }

        protected override Func<int[], ClassificationBatch> Batches(DataSplit split, ulong seed, Device? device)
            => indices => Batch(split, indices, device);

        private ClassificationBatch Batch(DataSplit split, int[] indices, Device? device)
        {
            var (ids, mask) = Padded(split, indices, device);
            var labels = Labels(split);
            var y = torch.tensor(indices.Select(i => (long)labels[i]).ToArray());
            return new ClassificationBatch(ids, OnDevice(y, device), null, mask);
        }
    }
}
