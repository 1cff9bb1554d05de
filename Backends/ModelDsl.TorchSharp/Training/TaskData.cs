using System;
using static TorchSharp.torch;
using ModelDsl.Training;

namespace ModelDsl.TorchSharp.Training
{
    /// <summary>Next-token prediction: ids [B, T] and the targets [B, T] shifted by one.</summary>
    public sealed record TokenBatch(Tensor Ids, Tensor Targets);

    /// <summary>Masked-language modelling: ids with some tokens masked, targets -100 except at the masked positions.</summary>
    public sealed record MaskedBatch(Tensor Ids, Tensor Targets, Tensor? Segments = null, Tensor? Mask = null);

    /// <summary>Sequence classification: ids [B, T] and one label per sequence [B].</summary>
    public sealed record ClassificationBatch(Tensor Ids, Tensor Labels, Tensor? Segments = null, Tensor? Mask = null);

    /// <summary>Sequence to sequence: source ids, the decoder input (targets shifted right) and the targets.</summary>
    public sealed record SequenceToSequenceBatch(Tensor Source, Tensor DecoderInput, Tensor Targets, Tensor? SourceMask = null);

    /// <summary>Image classification: images [B, C, H, W] and labels [B].</summary>
    public sealed record ImageBatch(Tensor Pixels, Tensor Labels);

    /// <summary>An endless, seeded stream of batches; the tensors join the caller's dispose scope.</summary>
    public interface IBatchStream<out TBatch>
    {
        /// <summary>The next batch.</summary>
        TBatch Next();

        /// <summary>Items (tokens, images, sequences) per batch, for throughput.</summary>
        long ItemsPerBatch { get; }
    }

    /// <summary>A stream whose position can be saved and restored, so an interrupted training run resumes on the same batches.</summary>
    public interface IResumableStream
    {
        /// <summary>The stream's position (its generators' states).</summary>
        ulong[] SaveState();

        /// <summary>Returns to a saved position.</summary>
        void RestoreState(ulong[] state);
    }

    /// <summary>A task's data: seeded batch streams over a training and a validation split.</summary>
    public interface ITaskData<out TBatch>
    {
        /// <summary>What the task counts: "tokens", "images", "sequences".</summary>
        string ItemName { get; }

        /// <summary>Items in a split.</summary>
        long Items(DataSplit split);

        /// <summary>Whether the split can give a batch of the options' shape.</summary>
        bool CanStream(DataSplit split, TrainingOptions options);

        /// <summary>A deterministic stream of batches of <paramref name="split"/>: the same seed gives the same batches.</summary>
        IBatchStream<TBatch> Stream(DataSplit split, TrainingOptions options, ulong seed, Device? device);
    }

    /// <summary>Language-model batches from a backend-neutral corpus: random windows of SequenceLength + 1 tokens.</summary>
    public sealed class LanguageModelData : ITaskData<TokenBatch>
    {
        private readonly TokenBatches corpus;

        public LanguageModelData(TokenBatches corpus) => this.corpus = corpus ?? throw new System.ArgumentNullException(nameof(corpus));

        public TokenBatches Corpus => corpus;

        public string ItemName => "tokens";

        public long Items(DataSplit split) => corpus.Tokens(split).Length;

        public bool CanStream(DataSplit split, TrainingOptions options) => corpus.Tokens(split).Length > options.SequenceLength;

        public IBatchStream<TokenBatch> Stream(DataSplit split, TrainingOptions options, ulong seed, Device? device)
            => new Windows(corpus.Sampler(split, options.BatchSize, options.SequenceLength, seed, device));

        private sealed class Windows : IBatchStream<TokenBatch>, IResumableStream
        {
            private readonly BatchSampler sampler;

            public Windows(BatchSampler sampler) => this.sampler = sampler;

            public long ItemsPerBatch => (long)sampler.BatchSize * sampler.SequenceLength;

            public TokenBatch Next()
            {
                var (ids, targets) = sampler.Next();
                return new TokenBatch(ids, targets);
            }

            public ulong[] SaveState() => new[] { sampler.State };

            public void RestoreState(ulong[] state) => sampler.State = state.Length == 1 ? state[0]
                : throw new ArgumentException($"A token-window stream's state is one number, not {state.Length}.", nameof(state));
        }
    }
}
