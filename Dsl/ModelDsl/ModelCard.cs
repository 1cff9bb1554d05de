using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace ModelDsl
{
    /// <summary>
    /// A cost that grows with the run-time sizes: <see cref="Coefficient"/> x batch^<see cref="BatchPower"/> x
    /// time^<see cref="TimePower"/> x sourceTime^<see cref="SourceTimePower"/>. The generator derives these from the
    /// model's op graph; <see cref="Name"/> says which part of the model the term is for.
    /// </summary>
    public sealed class CostTerm
    {
        /// <summary>Creates a term; called by generated code.</summary>
        public CostTerm(string name, long coefficient, int batch = 0, int time = 0, int sourceTime = 0)
        {
            Name = name;
            Coefficient = coefficient;
            BatchPower = batch;
            TimePower = time;
            SourceTimePower = sourceTime;
        }

        /// <summary>The op or buffer the term counts, e.g. "DecoderLayer.qkv".</summary>
        public string Name { get; }
        /// <summary>The constant factor.</summary>
        public long Coefficient { get; }
        /// <summary>Power of the batch size.</summary>
        public int BatchPower { get; }
        /// <summary>Power of the sequence length (the target sequence of an encoder-decoder).</summary>
        public int TimePower { get; }
        /// <summary>Power of an encoder-decoder's source sequence length.</summary>
        public int SourceTimePower { get; }

        /// <summary>The term's value for given sizes.</summary>
        public double At(long batch, long time, long sourceTime)
            => Coefficient * Math.Pow(batch, BatchPower) * Math.Pow(time, TimePower) * Math.Pow(sourceTime, SourceTimePower);

        /// <inheritdoc />
        public override string ToString() => string.Format(CultureInfo.InvariantCulture, "{0}: {1:N0}{2}{3}{4}", Name, Coefficient,
            Power("B", BatchPower), Power("T", TimePower), Power("S", SourceTimePower));

        private static string Power(string symbol, int power)
            => power == 0 ? "" : power == 1 ? " x " + symbol : " x " + symbol + "^" + power.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Facts about a declared model that the generator computes at compile time from its op graph: sizes, the
    /// checkpoint layout whose names it uses, its parameter count, its forward FLOPs and the memory a training step
    /// keeps for the backward pass. Every generated model exposes one as <c>Card</c>.
    /// </summary>
    public sealed class ModelCard
    {
        private readonly CostTerm[] forwardFlops;
        private readonly CostTerm[] activationBytes;

        /// <summary>Creates a card; called by generated code.</summary>
        public ModelCard(string name, string family, string layout, string task, int vocab, int context, int hidden,
            int heads, int kvHeads, int headDim, int encoderLayers, int decoderLayers, int inner, int classes,
            int segmentTypes, int imageSize, int patchSize, int channels, int experts, int topK,
            long parameterCount, CostTerm[] forwardFlops, CostTerm[] activationBytes)
        {
            Name = name; Family = family; Layout = layout; Task = task; Vocab = vocab; Context = context; Hidden = hidden;
            Heads = heads; KvHeads = kvHeads; HeadDim = headDim; EncoderLayers = encoderLayers; DecoderLayers = decoderLayers;
            Inner = inner; Classes = classes; SegmentTypes = segmentTypes; ImageSize = imageSize; PatchSize = patchSize;
            Channels = channels; Experts = experts; TopK = topK; ParameterCount = parameterCount;
            this.forwardFlops = forwardFlops ?? throw new ArgumentNullException(nameof(forwardFlops));
            this.activationBytes = activationBytes ?? throw new ArgumentNullException(nameof(activationBytes));
        }

        /// <summary>The declaring type's name.</summary>
        public string Name { get; }
        /// <summary>Decoder, Encoder, EncoderDecoder or VisionEncoder.</summary>
        public string Family { get; }
        /// <summary>The Hugging Face architecture whose parameter names and layouts the model uses ("GPT-2", "Llama", "BERT", "T5", "ViT", ...).</summary>
        public string Layout { get; }
        /// <summary>What the head computes: CausalLanguageModel, MaskedLanguageModel, SequenceClassification, SequenceToSequence or ImageClassification.</summary>
        public string Task { get; }
        /// <summary>Vocabulary size (0 for vision models).</summary>
        public int Vocab { get; }
        /// <summary>Longest sequence (0 for vision models, whose sequence is the patches and the class token).</summary>
        public int Context { get; }
        /// <summary>Model width.</summary>
        public int Hidden { get; }
        /// <summary>Query heads.</summary>
        public int Heads { get; }
        /// <summary>Key/value heads.</summary>
        public int KvHeads { get; }
        /// <summary>Per-head width.</summary>
        public int HeadDim { get; }
        /// <summary>Encoder blocks (0 for a decoder-only model).</summary>
        public int EncoderLayers { get; }
        /// <summary>Decoder blocks (0 for an encoder-only model).</summary>
        public int DecoderLayers { get; }
        /// <summary>Blocks across all stacks.</summary>
        public int Layers => EncoderLayers + DecoderLayers;
        /// <summary>Feed-forward inner width.</summary>
        public int Inner { get; }
        /// <summary>Classes of a classification head (0 without one).</summary>
        public int Classes { get; }
        /// <summary>Segment (token-type) ids of a BERT-style encoder (0 without segment embeddings).</summary>
        public int SegmentTypes { get; }
        /// <summary>Side of the input image in pixels (vision models; 0 otherwise).</summary>
        public int ImageSize { get; }
        /// <summary>Side of a patch in pixels (vision models; 0 otherwise).</summary>
        public int PatchSize { get; }
        /// <summary>Input channels (vision models; 0 otherwise).</summary>
        public int Channels { get; }
        /// <summary>Experts per mixture-of-experts layer (0 for a dense model).</summary>
        public int Experts { get; }
        /// <summary>Experts each token is routed to (0 for a dense model).</summary>
        public int TopK { get; }
        /// <summary>Trainable parameters, counting tied matrices once.</summary>
        public long ParameterCount { get; }

        /// <summary>Forward FLOPs by op, as terms in batch and time (matrix products only; multiply-adds count two).</summary>
        public IReadOnlyList<CostTerm> ForwardFlopTerms => forwardFlops;

        /// <summary>Bytes of activations a training step keeps, by buffer, as terms in batch and time.</summary>
        public IReadOnlyList<CostTerm> ActivationByteTerms => activationBytes;

        /// <summary>Forward FLOPs of one pass over <paramref name="batch"/> sequences of <paramref name="time"/> tokens
        /// (an encoder-decoder's source is <paramref name="sourceTime"/> long, <paramref name="time"/> when not given).
        /// A training step costs about three times this.</summary>
        public double ForwardFlops(long batch, long time, long? sourceTime = null)
            => forwardFlops.Sum(t => t.At(batch, time, sourceTime ?? time));

        /// <summary>Forward FLOPs per token at sequence length <paramref name="sequenceLength"/> (per image for a vision model).</summary>
        public long ForwardFlopsPerToken(int sequenceLength)
            => (long)Math.Round(Family == "VisionEncoder" ? ForwardFlops(1, 1) : ForwardFlops(1, sequenceLength) / sequenceLength);

        /// <summary>Bytes of activations a training step on this batch keeps for the backward pass, with the buffers
        /// reused between layers (float32; the generator's buffer plan).</summary>
        public long ActivationBytes(long batch, long time, long? sourceTime = null)
            => (long)Math.Round(activationBytes.Sum(t => t.At(batch, time, sourceTime ?? time)));

        /// <inheritdoc />
        public override string ToString()
        {
            // A vision model reads images, not tokens: its inputs are the image and its patches, not a vocabulary and a context.
            string inputs = ImageSize > 0
                ? string.Format(CultureInfo.InvariantCulture, "images {0}x{0}x{1} in {2}x{2} patches", ImageSize, Channels, PatchSize)
                : string.Format(CultureInfo.InvariantCulture, "vocab {0}, context {1}", Vocab, Context);
            string extras = (Classes > 0 ? string.Format(CultureInfo.InvariantCulture, ", {0} classes", Classes) : "")
                + (Experts > 0 ? string.Format(CultureInfo.InvariantCulture, ", {0} experts (top {1})", Experts, TopK) : "");
            return string.Format(CultureInfo.InvariantCulture,
                "{0} ({1}, {2} names): {3:N0} parameters, {4}, hidden {5}, heads {6} (kv {7}, dim {8}), layers {9}, inner {10}{11}",
                Name, Family, Layout, ParameterCount, inputs, Hidden, Heads, KvHeads, HeadDim,
                EncoderLayers > 0 && DecoderLayers > 0 ? EncoderLayers + "+" + DecoderLayers : Layers.ToString(CultureInfo.InvariantCulture), Inner, extras);
        }
    }
}
