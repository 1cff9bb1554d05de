using System;
using TorchSharp;
using ModelDsl.TorchSharp.Training;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// A generated T5-style encoder-decoder: the encoder reads source ids once, the decoder predicts target ids with
    /// cross-attention to the encoder's states. Teacher-forced logits and loss here; greedy and beam-search decoding
    /// with a cache (SequenceToSequenceModel.Decoding.cs) use <see cref="Encode"/> and <see cref="Decode"/> through
    /// <see cref="EncodeSource"/> and <see cref="DecodeNext"/>.
    /// </summary>
    public abstract partial class SequenceToSequenceModel : TaskModel<SequenceToSequenceBatch>
    {
        protected SequenceToSequenceModel(ModelCard card) : base(card) { }

        /// <summary>Encoder states [B, S, Hidden] for source ids [B, S] (generated).</summary>
        protected abstract Tensor Encode(Tensor source, Tensor sourceMask, ForwardState state);

        /// <summary>Decoder logits [B, T, Vocab] for target ids [B, T] given the encoder's states (generated).</summary>
        protected abstract Tensor Decode(Tensor ids, Tensor encoded, Tensor sourceMask, ForwardState state);

        /// <summary>Encode, then Decode (generated).</summary>
        protected abstract Tensor Logits(Tensor source, Tensor sourceMask, Tensor ids, ForwardState state);

        /// <summary>
        /// Teacher-forced logits [B, T, Vocab]: <paramref name="decoderInput"/> [B, T] is the target shifted right
        /// (starting with the decoder start id), <paramref name="sourceMask"/> [B, S] is true for real source tokens.
        /// </summary>
        public ModelOutput Forward(Tensor source, Tensor decoderInput, Tensor? sourceMask = null)
        {
            CheckIds(source, "source ids");
            CheckIds(decoderInput, "decoder input ids", 0, source);
            if (sourceMask is not null) CheckMask(sourceMask, source, "the source mask");
            var state = new ForwardState(null, training);
            var logits = Logits(source, sourceMask ?? torch.ones(source.shape, ScalarType.Bool, source.device), decoderInput, state);
            return Output(logits, state);
        }

        /// <inheritdoc />
        public override Tensor Loss(SequenceToSequenceBatch batch) => Loss(batch.Source, batch.DecoderInput, batch.Targets, batch.SourceMask);

        /// <summary>Mean cross-entropy of the decoder's logits against targets [B, T] (-100 ignored), plus any auxiliary loss.</summary>
        public Tensor Loss(Tensor source, Tensor decoderInput, Tensor targets, Tensor? sourceMask = null)
        {
            CheckTargets(targets, decoderInput.shape, Card.Vocab, "targets");
            var output = Forward(source, decoderInput, sourceMask);
            return WithAuxiliary(TaskLoss(output.Logits, targets), output);
        }

        /// <summary>The encoder's states [B, S, Hidden] for source ids, for decoding.</summary>
        public Tensor EncodeSource(Tensor source, Tensor? sourceMask = null)
        {
            CheckIds(source, "source ids");
            if (sourceMask is not null) CheckMask(sourceMask, source, "the source mask");
            return Encode(source, sourceMask ?? torch.ones(source.shape, ScalarType.Bool, source.device), new ForwardState(null, training));
        }

        /// <summary>Decoder logits for the next ids [B, T] after the cached ones; the cache keeps the encoder's keys and values.</summary>
        public Tensor DecodeNext(Tensor ids, Tensor encoded, Tensor sourceMask, KvCache cache)
        {
            ArgumentNullException.ThrowIfNull(cache);
            CheckIds(ids, "decoder ids", cache.Length, encoded);
            cache.CheckFits(Card.Name, ids.shape[0]);
            var state = new ForwardState(cache, training);
            var logits = Decode(ids, encoded, sourceMask, state);
            cache.Advance((int)ids.shape[1]);
            return logits;
        }

        /// <summary>An empty decoder cache for <paramref name="batch"/> sequences.</summary>
        public KvCache CreateCache(long batch)
            => new(Card.Name, Card.DecoderLayers, batch, Card.KvHeads, Card.Context, Card.HeadDim, Device, DType);
    }
}
