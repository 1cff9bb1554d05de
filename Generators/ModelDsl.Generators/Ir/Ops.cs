using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Spec;
using ModelDsl.Generators.Validation;

namespace ModelDsl.Generators.Ir
{
    /// <summary>
    /// The kinds of op a graph is built from. A backend implements a set of them; a model whose graph uses a kind the
    /// backend lacks gets MDSL0100 for that backend, at the attribute that asked for the op.
    /// </summary>
    internal enum OpKind
    {
        Embedding, LearnedPositions, SinusoidalPositions, Rotary, RelativePositionBias, Add, Norm, Linear, LowRank,
        Activation, GatedActivation, Split, Attention, Dropout, Router, Experts, RouterLoss, PatchEmbedding,
        ClassToken, SelectToken, Scale, CrossEntropy, Call, Repeat,
    }

    /// <summary>Non-linearities, plain or as the gate of a gated unit.</summary>
    internal enum ActivationKind { Gelu, GeluTanh, Relu, Silu, Tanh }

    /// <summary>How a linear layer stores its weight: [in, out] (GPT-2's Conv1D) or [out, in] (nn.Linear).</summary>
    internal enum WeightLayout { InOut, OutIn }

    /// <summary>Which key positions a query may attend to, before padding and windows.</summary>
    internal enum AttentionMask { Causal, Bidirectional }

    /// <summary>What a key/value cache holds for this attention during incremental decoding.</summary>
    internal enum AttentionCache
    {
        /// <summary>No cache (training, encoders).</summary>
        None,
        /// <summary>Self-attention of a decoder: this step's keys and values are appended to the cached ones.</summary>
        Self,
        /// <summary>Cross-attention: keys and values come from the encoder, computed once and reused.</summary>
        Cross,
    }

    /// <summary>
    /// One operation: input and output value ids, the parameters it reads, and the attribute (argument) of the
    /// declaration that asked for it, so a backend that cannot generate it reports MDSL0100 there.
    /// </summary>
    internal abstract record Op
    {
        public EquatableArray<int> Inputs { get; init; }
        public EquatableArray<int> Outputs { get; init; }
        public EquatableArray<int> Parameters { get; init; }
        public FindingSite Origin { get; init; }

        public abstract OpKind Kind { get; }

        public int Input(int i) => Inputs[i];
        public int Output(int i = 0) => Outputs[i];
        public int Parameter(int i) => Parameters[i];
        public bool HasParameter(int i) => i < Parameters.Count && Parameters[i] >= 0;
    }

    /// <summary>Rows of a table by id: ids [.., T] → [.., T, Hidden]. Parameters: table.</summary>
    internal sealed record EmbeddingOp : Op { public override OpKind Kind => OpKind.Embedding; }

    /// <summary>x + table[offset .. offset + T], offset being the cached positions. Parameters: table [Context, Hidden].</summary>
    internal sealed record LearnedPositionsOp : Op { public override OpKind Kind => OpKind.LearnedPositions; }

    /// <summary>x + the fixed sin/cos encodings of positions offset .. offset + T (Vaswani et al. 2017).</summary>
    internal sealed record SinusoidalPositionsOp : Op { public override OpKind Kind => OpKind.SinusoidalPositions; }

    /// <summary>
    /// Rotary positions on queries and keys ([.., T, Heads*HeadDim] and [.., T, KvHeads*HeadDim]), Hugging Face's
    /// rotate-half convention: the first and second halves of each head are the pairs. Inputs q, k; outputs q, k.
    /// </summary>
    internal sealed record RotaryOp(double Base, int HeadDim) : Op { public override OpKind Kind => OpKind.Rotary; }

    /// <summary>
    /// T5's bucketed relative-position bias for queries at positions offset .. offset + T over keys 0 .. offset + T:
    /// [Heads, Time, KeyTime]. Bidirectional in encoders, causal in decoders. Input: the query-side states (for T).
    /// Parameters: table [Buckets, Heads].
    /// </summary>
    internal sealed record RelativePositionBiasOp(bool Bidirectional, int Buckets, int MaxDistance) : Op
    {
        public override OpKind Kind => OpKind.RelativePositionBias;
    }

    /// <summary>a + b (residual connections, embedding sums); b may broadcast over leading dimensions.</summary>
    internal sealed record AddOp : Op { public override OpKind Kind => OpKind.Add; }

    /// <summary>LayerNorm or RMSNorm over the last dimension. Parameters: weight, bias (or -1).</summary>
    internal sealed record NormOp(NormKind Norm, double Epsilon) : Op { public override OpKind Kind => OpKind.Norm; }

    /// <summary>x W (+ b). Parameters: weight (in the layout's orientation), bias (or -1).</summary>
    internal sealed record LinearOp(WeightLayout Layout) : Op { public override OpKind Kind => OpKind.Linear; }

    /// <summary>A LoRA update: Scale x A^T B^T with A [Rank, in], B [out, Rank]. Parameters: A, B.</summary>
    internal sealed record LowRankOp(double Scale) : Op { public override OpKind Kind => OpKind.LowRank; }

    /// <summary>An element-wise non-linearity.</summary>
    internal sealed record ActivationOp(ActivationKind Function) : Op { public override OpKind Kind => OpKind.Activation; }

    /// <summary>A gated unit: Function(gate) * up. Inputs: gate, up.</summary>
    internal sealed record GatedActivationOp(ActivationKind Function) : Op { public override OpKind Kind => OpKind.GatedActivation; }

    /// <summary>Splits the last dimension into the outputs' widths (GPT-2's fused query/key/value).</summary>
    internal sealed record SplitOp : Op { public override OpKind Kind => OpKind.Split; }

    /// <summary>
    /// Scaled dot-product attention over heads. Inputs: q [B, T, Heads*HeadDim], k and v [B, KeyTime, KvHeads*HeadDim],
    /// then the padding mask [B, KeyTime] when <see cref="PaddingMask"/>, then the additive bias [Heads, T, KeyTime] when
    /// <see cref="PositionBias"/>. Output [B, T, Heads*HeadDim]. Window: each query sees itself and the Window - 1
    /// positions before it. Scaled: the scores are divided by sqrt(HeadDim); T5 does not scale (its init absorbs it).
    /// </summary>
    internal sealed record AttentionOp(
        AttentionMask Mask,
        int Heads,
        int KvHeads,
        int HeadDim,
        int? Window,
        bool Scaled,
        double Dropout,
        AttentionCache Cache,
        bool PaddingMask,
        bool PositionBias) : Op
    {
        public override OpKind Kind => OpKind.Attention;
    }

    /// <summary>Inverted dropout, in training only.</summary>
    internal sealed record DropoutOp(double Rate) : Op { public override OpKind Kind => OpKind.Dropout; }

    /// <summary>
    /// A top-k router: logits = x W_gate^T over tokens [Tokens, Experts]; softmax; the TopK largest probabilities and
    /// their experts; renormalised to sum to one when <see cref="Renormalize"/> (Mixtral). Input x [B, T, Hidden];
    /// outputs weights [Tokens, TopK], experts [Tokens, TopK] (int64), logits [Tokens, Experts]. Parameters: gate [Experts, Hidden].
    /// </summary>
    internal sealed record RouterOp(int TopK, bool Renormalize) : Op { public override OpKind Kind => OpKind.Router; }

    /// <summary>
    /// Dispatch, per-expert feed-forward and weighted combine: y[t] = sum_k weights[t, k] FFN_{experts[t, k]}(x[t]).
    /// Inputs x [B, T, Hidden], weights, experts. Parameters per expert ("{expert}" in the path): up [Inner, Hidden]
    /// (Mixtral's w3), then gate [Inner, Hidden] (w1, the activated one: f(gate x) * up x) when gated, then down
    /// [Hidden, Inner] (w2); in GPT-2's Conv1D layout each is stored transposed, [in, out].
    /// </summary>
    internal sealed record ExpertsOp(ActivationKind Function, bool Gated) : Op { public override OpKind Kind => OpKind.Experts; }

    /// <summary>
    /// The load-balancing loss of Switch/Mixtral (Hugging Face's load_balancing_loss_func): Experts x sum_e f_e P_e,
    /// f_e the fraction of routing slots (tokens x TopK) sent to expert e, P_e the mean router probability of e;
    /// times <see cref="Weight"/>, plus <see cref="ZWeight"/> times the router z-loss mean(logsumexp(logits)^2).
    /// Inputs logits, experts; output a scalar that the runtime adds to the task loss.
    /// </summary>
    internal sealed record RouterLossOp(int Experts, double Weight, double ZWeight) : Op { public override OpKind Kind => OpKind.RouterLoss; }

    /// <summary>Non-overlapping patches projected to Hidden: [B, C, I, I] → [B, Patches, Hidden]. Parameters: weight [Hidden, C, P, P], bias.</summary>
    internal sealed record PatchEmbeddingOp(int PatchSize) : Op { public override OpKind Kind => OpKind.PatchEmbedding; }

    /// <summary>Prepends a learned class token: [B, P, Hidden] → [B, P+1, Hidden]. Parameters: token [1, 1, Hidden].</summary>
    internal sealed record ClassTokenOp : Op { public override OpKind Kind => OpKind.ClassToken; }

    /// <summary>One position of every sequence: [B, T, Hidden] → [B, Hidden] (the class token, BERT's [CLS]).</summary>
    internal sealed record SelectTokenOp(int Index) : Op { public override OpKind Kind => OpKind.SelectToken; }

    /// <summary>x * Factor (T5's tied head rescales by Hidden^-0.5).</summary>
    internal sealed record ScaleOp(double Factor, string FactorExpression) : Op { public override OpKind Kind => OpKind.Scale; }

    /// <summary>Mean softmax cross-entropy of logits [.., Classes] against int64 targets [..]; targets equal to -100 are ignored.</summary>
    internal sealed record CrossEntropyOp : Op
    {
        public const int IgnoredTarget = -100;

        public override OpKind Kind => OpKind.CrossEntropy;
    }

    /// <summary>Runs a function: inputs bind to its formal inputs, its outputs become this op's outputs.</summary>
    internal sealed record CallOp(string Function) : Op { public override OpKind Kind => OpKind.Call; }

    /// <summary>
    /// Runs a stack: the first <see cref="Carried"/> inputs flow through every layer (layer i's outputs are layer
    /// i+1's inputs); the remaining inputs are the same for every layer (encoder states, masks, position bias).
    /// Outputs: the carried values after the last layer.
    /// </summary>
    internal sealed record RepeatOp(string Stack, int Carried) : Op { public override OpKind Kind => OpKind.Repeat; }
}
