using System;
using System.Collections.Generic;
using System.Linq;
using ModelDsl.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Training
{
    /// <summary>
    /// Sequence-to-sequence batches from pairs of token ids held in memory: each batch draws BatchSize pairs of a split
    /// at random (seeded, with replacement), pads the sources to the longest with <see cref="PadId"/> under a mask, and
    /// builds T5's teacher forcing: the decoder input is <see cref="DecoderStartId"/> then the target, the targets are
    /// the target then <see cref="EndId"/>, both padded (targets with -100, which the loss skips).
    /// </summary>
    public sealed class SequenceToSequenceData : ITaskData<SequenceToSequenceBatch>
    {
        private readonly IReadOnlyList<(int[] Source, int[] Target)> train;
        private readonly IReadOnlyList<(int[] Source, int[] Target)> validation;

        /// <exception cref="ArgumentException">The training pairs are empty, or a source is empty.</exception>
        public SequenceToSequenceData(IReadOnlyList<(int[] Source, int[] Target)> train, IReadOnlyList<(int[] Source, int[] Target)> validation,
            int padId = 0, int decoderStartId = 0, int endId = 1)
        {
            this.train = train ?? throw new ArgumentNullException(nameof(train));
            this.validation = validation ?? throw new ArgumentNullException(nameof(validation));
            if (train.Count == 0) throw new ArgumentException("There are no training pairs.", nameof(train));
            foreach (var (pairs, name) in new[] { (train, nameof(train)), (validation, nameof(validation)) })
                for (int i = 0; i < pairs.Count; i++)
                    if (pairs[i].Source is not { Length: > 0 } || pairs[i].Target is null)
                        throw new ArgumentException($"Pair {i} of the {name} split has an empty source or no target.", name);
            PadId = padId;
            DecoderStartId = decoderStartId;
            EndId = endId;
        }

        public int PadId { get; }

        public int DecoderStartId { get; }

        public int EndId { get; }

        public string ItemName => "sequences";

        public long Items(DataSplit split) => Pairs(split).Count;

        public bool CanStream(DataSplit split, TrainingOptions options) => Pairs(split).Count > 0;

        public IBatchStream<SequenceToSequenceBatch> Stream(DataSplit split, TrainingOptions options, ulong seed, Device? device)
        {
            ArgumentNullException.ThrowIfNull(options);
            return new Batches(this, Pairs(split), options.BatchSize, new Random(unchecked((int)(seed ^ (seed >> 32)))), device);
        }

        /// <summary>The batch of the given pairs (the stream's batches are made here; also for evaluation code).</summary>
        public SequenceToSequenceBatch Batch(IReadOnlyList<(int[] Source, int[] Target)> pairs, Device? device = null)
        {
            ArgumentNullException.ThrowIfNull(pairs);
            var (source, mask) = PaddedSources(pairs.Select(p => p.Source).ToArray(), device);
            int batch = pairs.Count, time = pairs.Max(p => p.Target.Length) + 1;
            var decoderInput = new long[batch * time];
            var targets = new long[batch * time];
            Array.Fill(decoderInput, PadId);
            Array.Fill(targets, TransformerModel.IgnoredTarget);
            for (int b = 0; b < batch; b++)
            {
                var target = pairs[b].Target;
                decoderInput[b * time] = DecoderStartId;
                for (int i = 0; i < target.Length; i++)
                {
                    decoderInput[b * time + i + 1] = target[i];
                    targets[b * time + i] = target[i];
                }
                targets[b * time + target.Length] = EndId;
            }
            return new SequenceToSequenceBatch(source, On(torch.tensor(decoderInput, batch, time), device), On(torch.tensor(targets, batch, time), device), mask);
        }

        /// <summary>Sources [B, S] padded with <see cref="PadId"/> to the longest, and their mask [B, S] (true for real tokens).</summary>
        public (Tensor Source, Tensor Mask) PaddedSources(IReadOnlyList<int[]> sources, Device? device = null)
        {
            ArgumentNullException.ThrowIfNull(sources);
            if (sources.Count == 0) throw new ArgumentException("A batch needs at least one source.", nameof(sources));
            int batch = sources.Count, time = sources.Max(s => s.Length);
            var ids = new long[batch * time];
            var mask = new bool[batch * time];
            Array.Fill(ids, PadId);
            for (int b = 0; b < batch; b++)
                for (int i = 0; i < sources[b].Length; i++)
                {
                    ids[b * time + i] = sources[b][i];
                    mask[b * time + i] = true;
                }
            return (On(torch.tensor(ids, batch, time), device), On(torch.tensor(mask, batch, time), device));
        }

        private static Tensor On(Tensor x, Device? device) => device is null || device.type == DeviceType.CPU ? x : x.to(device);

        private IReadOnlyList<(int[] Source, int[] Target)> Pairs(DataSplit split) => split == DataSplit.Train ? train : validation;

        private sealed class Batches : IBatchStream<SequenceToSequenceBatch>
        {
            private readonly SequenceToSequenceData data;
            private readonly IReadOnlyList<(int[] Source, int[] Target)> pairs;
            private readonly int size;
            private readonly Random random;
            private readonly Device? device;

            public Batches(SequenceToSequenceData data, IReadOnlyList<(int[] Source, int[] Target)> pairs, int size, Random random, Device? device)
                => (this.data, this.pairs, this.size, this.random, this.device) = (data, pairs, size, random, device);

            public long ItemsPerBatch => size;

            public SequenceToSequenceBatch Next()
                => data.Batch(Enumerable.Range(0, size).Select(_ => pairs[random.Next(pairs.Count)]).ToArray(), device);
        }
    }
}
