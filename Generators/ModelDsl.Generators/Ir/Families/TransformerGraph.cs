using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Ir.Layouts;
using ModelDsl.Generators.Spec;
using ModelDsl.Generators.Validation;
using A = ModelDsl.Generators.Spec.DslGrammar.Args;
using G = ModelDsl.Generators.Spec.DslGrammar;

namespace ModelDsl.Generators.Ir.Families
{
    /// <summary>
    /// Builds the op graph of every family from shared pieces: embeddings, one self-attention, cross-attention,
    /// feed-forward and mixture-of-experts sub-layer each, a layer body (pre- or post-norm), stacks and heads. A family
    /// is a choice of pieces (<see cref="Build"/>); names come from the checkpoint layout, so nothing here is a
    /// checkpoint name. Every op records the attribute that asked for it, for MDSL0100.
    /// </summary>
    internal sealed class TransformerGraph
    {
        public const string Decoder = "Decoder";
        public const string Encoder = "Encoder";

        private readonly GraphBuilder g;
        private readonly ModelSpec spec;
        private readonly Dims d;
        private readonly InitScheme init;

        private TransformerGraph(ModelSpec spec)
        {
            this.spec = spec;
            g = new GraphBuilder(spec);
            d = g.Dims;
            init = new InitScheme(spec, g.Layout);
        }

        /// <summary>The graph of a valid spec.</summary>
        public static ModelGraph Build(ModelSpec spec)
        {
            var t = new TransformerGraph(spec);
            return spec.Family switch
            {
                ModelFamily.Decoder => t.CausalLanguageModel(),
                ModelFamily.Encoder => t.EncoderModel(),
                ModelFamily.EncoderDecoder => t.SequenceToSequence(),
                ModelFamily.VisionEncoder => t.ImageClassifier(),
                _ => throw new ArgumentOutOfRangeException(nameof(spec), spec.Family, "A valid spec has a family."),
            };
        }

        private string FamilyAttribute => spec.Family.ToString();

        private FindingSite On(string attribute, string? argument = null) => FindingSite.On(attribute, argument);

        /// <summary>The attribute a norm of this model comes from (the family's when neither is written).</summary>
        private FindingSite NormSite
            => spec.Has(G.PreNorm) ? On(G.PreNorm, spec.Norm.Kind == NormKind.RmsNorm ? A.Kind : null)
             : spec.Has(G.PostNorm) ? On(G.PostNorm, spec.Norm.Kind == NormKind.RmsNorm ? A.Kind : null)
             : On(FamilyAttribute);

        private FindingSite PositionSite
            => spec.Attributes.FirstOrDefault(a => G.PositionAttributes.Contains(a)) is { } written ? On(written) : On(FamilyAttribute);

        private bool PreNorm => spec.Norm.Placement == NormPlacement.Pre;

        // ================================================================ families

        private ModelGraph CausalLanguageModel()
        {
            Stack(Decoder, spec.Stacks.DecoderLayers ?? 0, AttentionMask.Causal, padding: false, cross: false, AttentionCache.Self);
            var f = g.Begin(ModelGraph.ForwardFunction, "Logits for token ids: embeddings, the decoder stack, the final norm and the LM head.");
            f.Origin = On(FamilyAttribute);
            int ids = f.Input("ids", Shape.Of(Dims.Batch, Dims.Time), ElementType.Int64, InputRole.TokenIds);
            var (x, table) = TokenEmbeddings(f, ids, Decoder);
            x = RunStack(f, Decoder, x, mask: -1, encoder: -1, encoderMask: -1);
            if (PreNorm) x = FinalNorm(f, x, Decoder);
            int logits = LanguageModelHead(f, x, table);
            f.Return(logits);
            TaskLoss(logits, Shape.Of(Dims.Batch, Dims.Time));
            return g.Build(ModelTask.CausalLanguageModel);
        }

        private ModelGraph EncoderModel()
        {
            bool classify = spec.Classifier is not null;
            Stack(Encoder, spec.Stacks.EncoderLayers ?? 0, AttentionMask.Bidirectional, padding: true, cross: false, AttentionCache.None);
            var f = g.Begin(ModelGraph.ForwardFunction, classify
                ? "Class logits for token ids: embeddings, the encoder stack, the pooler on the first token and the classifier."
                : "Masked-token logits for token ids: embeddings, the encoder stack and the MLM head (transform, tied decoder).");
            f.Origin = On(FamilyAttribute);
            int ids = f.Input("ids", Shape.Of(Dims.Batch, Dims.Time), ElementType.Int64, InputRole.TokenIds);
            int segments = spec.Embeddings.SegmentTypes is not null
                ? f.Input("segments", Shape.Of(Dims.Batch, Dims.Time), ElementType.Int64, InputRole.SegmentIds) : -1;
            int mask = f.Input("mask", Shape.Of(Dims.Batch, Dims.Time), ElementType.Bool, InputRole.PaddingMask);
            var (x, table) = TokenEmbeddings(f, ids, Encoder, segments);
            x = RunStack(f, Encoder, x, mask, encoder: -1, encoderMask: -1);
            if (PreNorm) x = FinalNorm(f, x, Encoder);
            int logits;
            if (classify)
            {
                f.Origin = On(G.ClassificationHead);
                int first = f.SelectToken(x, 0, "first");
                int pooled = f.Linear(first, f.LinearParameters(Role.Pooler, "", d.Hidden, d.Hidden, bias: true, init.Normal(Role.Pooler)), "pooled");
                pooled = f.Activation(pooled, ActivationKind.Tanh, "pooled");
                pooled = f.Dropout(pooled, spec.DropoutRate, "pooled");
                logits = f.Linear(pooled, f.LinearParameters(Role.Classifier, "", d.Hidden, d.Classes, bias: true, init.Normal(Role.Classifier)), "logits");
                f.Return(logits);
                TaskLoss(logits, Shape.Of(Dims.Batch));
                return g.Build(ModelTask.SequenceClassification);
            }
            // BERT's MLM head: dense + GELU + LayerNorm, then the (tied) decoder with its own bias.
            int h = f.Linear(x, f.LinearParameters(Role.MlmTransform, "", d.Hidden, d.Hidden, bias: true, init.Normal(Role.MlmTransform)), "h");
            h = f.Activation(h, Activation(spec.FeedForward.Activation), "h");
            h = f.Norm(h, spec.Norm.Kind, spec.Norm.Epsilon, f.NormParameters(Role.MlmNorm, "", spec.Norm.Kind, d.Hidden), "h");
            int bias = f.BareParameter(Role.MlmBias, Shape.Of(d.Vocab), InitRule.Zeros);
            int weight = spec.Embeddings.Tied ? table : f.LinearParameters(Role.LmHead, "", d.Hidden, d.Vocab, bias: false, init.Normal(Role.LmHead), orientation: WeightLayout.OutIn).Weight;
            f.Origin = spec.Embeddings.Tied ? On(G.TiedEmbeddings) : On(FamilyAttribute);
            logits = f.Linear(h, (weight, bias), "logits", WeightLayout.OutIn);
            f.Return(logits);
            TaskLoss(logits, Shape.Of(Dims.Batch, Dims.Time));
            return g.Build(ModelTask.MaskedLanguageModel);
        }

        private ModelGraph SequenceToSequence()
        {
            Stack(Encoder, spec.Stacks.EncoderLayers ?? 0, AttentionMask.Bidirectional, padding: true, cross: false, AttentionCache.None);
            Stack(Decoder, spec.Stacks.DecoderLayers ?? 0, AttentionMask.Causal, padding: false, cross: true, AttentionCache.Self);

            var encode = g.Begin("Encode", "Encoder states for source ids: the shared embedding, the encoder stack and its final norm.");
            encode.Origin = On(FamilyAttribute);
            int source = encode.Input("source", Shape.Of(Dims.Batch, Dims.SourceTime), ElementType.Int64, InputRole.SourceIds);
            int sourceMask = encode.Input("sourceMask", Shape.Of(Dims.Batch, Dims.SourceTime), ElementType.Bool, InputRole.SourceMask);
            var (e, table) = TokenEmbeddings(encode, source, Encoder);
            e = RunStack(encode, Encoder, e, sourceMask, encoder: -1, encoderMask: -1);
            if (PreNorm) e = FinalNorm(encode, e, Encoder);
            encode.Return(e);

            var decode = g.Begin("Decode", "Logits for target ids given the encoder states: the shared embedding, the decoder stack with cross-attention, its final norm and the LM head.");
            decode.Origin = On(FamilyAttribute);
            int ids = decode.Input("ids", Shape.Of(Dims.Batch, Dims.Time), ElementType.Int64, InputRole.TokenIds);
            int states = decode.Input("encoded", Shape.Of(Dims.Batch, Dims.SourceTime, d.Hidden));
            int statesMask = decode.Input("sourceMask", Shape.Of(Dims.Batch, Dims.SourceTime), ElementType.Bool, InputRole.SourceMask);
            var (x, _) = TokenEmbeddings(decode, ids, Decoder, segments: -1, table);
            x = RunStack(decode, Decoder, x, mask: -1, states, statesMask);
            if (PreNorm) x = FinalNorm(decode, x, Decoder);
            int logits = LanguageModelHead(decode, x, table);
            decode.Return(logits);

            var f = g.Begin(ModelGraph.ForwardFunction, "Logits for target ids given source ids (teacher forcing): Encode, then Decode.");
            f.Origin = On(FamilyAttribute);
            int fSource = f.Input("source", Shape.Of(Dims.Batch, Dims.SourceTime), ElementType.Int64, InputRole.SourceIds);
            int fMask = f.Input("sourceMask", Shape.Of(Dims.Batch, Dims.SourceTime), ElementType.Bool, InputRole.SourceMask);
            int fIds = f.Input("ids", Shape.Of(Dims.Batch, Dims.Time), ElementType.Int64, InputRole.TokenIds);
            int encoded = f.Call("Encode", fSource, fMask)[0];
            int fLogits = f.Call("Decode", fIds, encoded, fMask)[0];
            f.Return(fLogits);
            TaskLoss(fLogits, Shape.Of(Dims.Batch, Dims.Time));
            return g.Build(ModelTask.SequenceToSequence);
        }

        private ModelGraph ImageClassifier()
        {
            Stack(Encoder, spec.Stacks.EncoderLayers ?? 0, AttentionMask.Bidirectional, padding: false, cross: false, AttentionCache.None);
            var f = g.Begin(ModelGraph.ForwardFunction, "Class logits for images: patch embedding, class token, positions, the encoder stack, the final norm and the classifier on the class token.");
            f.Origin = On(FamilyAttribute);
            int pixels = f.Input("pixels", Shape.Of(Dims.Batch, d.Channels, d.Image, d.Image), ElementType.Float, InputRole.Pixels);
            int x = f.PatchEmbedding(pixels, f.PatchParameters(Role.PatchProjection, init.Normal(Role.PatchProjection)), "x");
            x = f.ClassToken(x, f.BareParameter(Role.ClassToken, Shape.Of(Dims.One, Dims.One, d.Hidden), init.Normal(Role.ClassToken)), "x");
            f.Origin = PositionSite;
            x = spec.Positions.Kind switch
            {
                PositionKind.Learned => f.LearnedPositions(x, f.BareParameter(Role.PositionTable, Shape.Of(Dims.One, d.Patches.Plus(1), d.Hidden), init.Normal(Role.PositionTable)), "x"),
                PositionKind.Sinusoidal => f.SinusoidalPositions(x, "x"),
                _ => x,
            };
            f.Origin = On(FamilyAttribute);
            x = f.Dropout(x, spec.DropoutRate, "x");
            x = RunStack(f, Encoder, x, mask: -1, encoder: -1, encoderMask: -1);
            if (PreNorm) x = FinalNorm(f, x, Encoder);
            int first = f.SelectToken(x, 0, "first");
            int logits = f.Linear(first, f.LinearParameters(Role.Classifier, "", d.Hidden, d.Classes, bias: true, init.Normal(Role.Classifier)), "logits");
            f.Return(logits);
            TaskLoss(logits, Shape.Of(Dims.Batch));
            return g.Build(ModelTask.ImageClassification);
        }

        // ================================================================ embeddings, heads, loss

        /// <summary>Token embedding (+ learned or sinusoidal positions, + segments, + BERT's embedding norm), then dropout.</summary>
        private (int X, int Table) TokenEmbeddings(FunctionBuilder f, int ids, string stack, int segments = -1, int sharedTable = -1)
        {
            int table = sharedTable >= 0 ? sharedTable : f.EmbeddingTable(Role.TokenEmbedding, d.Vocab, d.Hidden, init.Normal(Role.TokenEmbedding));
            int x = f.Embedding(ids, table, "x");
            f.Origin = PositionSite;
            if (spec.Positions.Kind == PositionKind.Learned)
                x = f.LearnedPositions(x, f.EmbeddingTableAt(Role.PositionEmbedding, stack, d.Context, d.Hidden, init.Normal(Role.PositionEmbedding)), "x");
            else if (spec.Positions.Kind == PositionKind.Sinusoidal)
                x = f.SinusoidalPositions(x, "x");
            if (segments >= 0)
            {
                f.Origin = On(G.SegmentEmbeddings);
                x = f.Add(x, f.Embedding(segments, f.EmbeddingTable(Role.SegmentEmbedding, d.Segments, d.Hidden, init.Normal(Role.SegmentEmbedding)), "segment"), "x");
            }
            f.Origin = On(FamilyAttribute);
            if (spec.Family == ModelFamily.Encoder && spec.Norm.Placement == NormPlacement.Post)
            {
                f.Origin = NormSite;
                x = f.Norm(x, spec.Norm.Kind, spec.Norm.Epsilon, f.NormParameters(Role.EmbeddingNorm, "", spec.Norm.Kind, d.Hidden), "x");
                f.Origin = On(FamilyAttribute);
            }
            return (f.Dropout(x, spec.DropoutRate, "x"), table);
        }

        private int FinalNorm(FunctionBuilder f, int x, string stack)
        {
            var origin = f.Origin;
            f.Origin = NormSite;
            x = f.Norm(x, spec.Norm.Kind, spec.Norm.Epsilon, f.NormParameters(Role.FinalNorm, stack, spec.Norm.Kind, d.Hidden), "x");
            f.Origin = origin;
            return f.Dropout(x, spec.Family == ModelFamily.EncoderDecoder ? spec.DropoutRate : 0, "x");
        }

        /// <summary>The LM head: the token embedding itself when tied (T5 first rescales by Hidden^-0.5), else its own matrix.</summary>
        private int LanguageModelHead(FunctionBuilder f, int x, int table)
        {
            if (spec.Embeddings.Tied)
            {
                f.Origin = On(G.TiedEmbeddings);
                if (spec.Family == ModelFamily.EncoderDecoder)
                    x = f.Scale(x, 1.0 / Math.Sqrt(spec.Hidden), "1.0 / global::System.Math.Sqrt(Hidden)", "x");
                return f.Linear(x, (table, -1), "logits", WeightLayout.OutIn);
            }
            f.Origin = On(FamilyAttribute);
            // Every layout stores the LM head as nn.Linear does, [Vocab, Hidden] (GPT-2's lm_head is no Conv1D).
            return f.Linear(x, f.LinearParameters(Role.LmHead, "", d.Hidden, d.Vocab, bias: false, init.Normal(Role.LmHead), orientation: WeightLayout.OutIn), "logits", WeightLayout.OutIn);
        }

        private void TaskLoss(int logitsOfForward, EquatableArray<Dim> targetShape)
        {
            var f = g.Begin(ModelGraph.LossFunction, "The task loss: mean cross-entropy of the logits against the targets (-100 is ignored).");
            f.Origin = On(FamilyAttribute);
            int logits = f.Input("logits", g.Value(logitsOfForward).Shape);
            int targets = f.Input("targets", targetShape, ElementType.Int64, InputRole.Targets);
            f.Return(f.CrossEntropy(logits, targets, "loss"));
        }

        // ================================================================ stacks and layers

        /// <summary>How a stack's layers attend. Time is the axis its layers run over: SourceTime for an encoder-decoder's encoder, Patches+1 for a vision encoder.</summary>
        private sealed record StackShape(AttentionMask Mask, bool Padding, bool Cross, AttentionCache Cache, bool Bias, Dim Time)
        {
            /// <summary>The keys' axis: the cached and new positions of a causal stack, the same positions otherwise.</summary>
            public Dim Keys => Time == Dims.Time ? Dims.KeyTime : Time;
        }

        private readonly Dictionary<string, StackShape> stacks = new();

        /// <summary>
        /// Defines a stack and its layer bodies: a dense body, and with [MixtureOfExperts] an expert body on every
        /// Every-th layer (layers Every-1, 2*Every-1, ...: Switch Transformers' sparse layers; Every = 1 is Mixtral).
        /// </summary>
        private void Stack(string name, int layers, AttentionMask mask, bool padding, bool cross, AttentionCache cache)
        {
            bool relative = spec.Positions.Kind == PositionKind.Relative;
            var time = spec.Family == ModelFamily.VisionEncoder ? d.Patches.Plus(1)
                : spec.Family == ModelFamily.EncoderDecoder && name == Encoder ? Dims.SourceTime
                : Dims.Time;
            var shape = new StackShape(mask, padding, cross, cache, relative, time);
            stacks[name] = shape;
            var experts = spec.Experts;
            int every = experts?.Every ?? 0;
            bool IsExpertLayer(int layer) => experts is not null && (layer + 1) % every == 0;
            bool anyDense = Enumerable.Range(0, layers).Any(l => !IsExpertLayer(l));
            bool anyExperts = Enumerable.Range(0, layers).Any(IsExpertLayer);
            string dense = name + "Layer", sparse = "Expert" + name + "Layer";
            var variants = new List<string>();
            if (anyDense) variants.Add(dense);
            if (anyExperts) variants.Add(sparse);
            g.DefineStack(name, layers, variants.ToArray(), l => variants.IndexOf(IsExpertLayer(l) ? sparse : dense));

            string prefix = spec.Family == ModelFamily.EncoderDecoder ? name : "";
            string attention = SelfAttention(prefix + "SelfAttention", name, shape);
            string crossAttention = cross ? CrossAttention(name) : "";
            if (anyDense) LayerBody(dense, name, shape, attention, crossAttention, FeedForward(prefix + "FeedForward", name, dense));
            if (anyExperts) LayerBody(sparse, name, shape, attention, crossAttention, MixtureOfExperts(prefix + "MixtureOfExperts", name, sparse));
        }

        /// <summary>Runs a stack: the carried hidden states, then what every layer shares (mask, position bias, encoder states).</summary>
        private int RunStack(FunctionBuilder f, string stack, int x, int mask, int encoder, int encoderMask)
        {
            var shape = stacks[stack];
            var arguments = new List<int> { x };
            if (shape.Padding) arguments.Add(mask);
            if (shape.Bias)
            {
                var origin = f.Origin;
                f.Origin = On(G.RelativePositions);
                int table = f.EmbeddingTableAt(Role.RelativeBias, stack, d.Buckets, d.Heads, init.Normal(Role.RelativeBias));
                arguments.Add(f.RelativePositionBias(x, table, bidirectional: shape.Mask == AttentionMask.Bidirectional, "positionBias"));
                f.Origin = origin;
            }
            if (shape.Cross)
            {
                arguments.Add(encoder);
                arguments.Add(encoderMask);
            }
            return f.Repeat(stack, 1, arguments.ToArray())[0];
        }

        private void LayerBody(string name, string stack, StackShape shape, string attention, string crossAttention, string feedForward)
        {
            bool pre = PreNorm;
            var f = g.Begin(name, LayerSummary(stack, pre, crossAttention.Length > 0, feedForward), stack, name);
            f.Origin = On(FamilyAttribute);
            int x = f.Input("x", Shape.Of(Dims.Batch, shape.Time, d.Hidden));
            var shared = new List<int>();
            if (shape.Padding) shared.Add(f.Input("mask", Shape.Of(Dims.Batch, shape.Time), ElementType.Bool, InputRole.PaddingMask));
            if (shape.Bias) shared.Add(f.Input("positionBias", Shape.Of(d.Heads, shape.Time, shape.Keys)));
            int encoder = -1, encoderMask = -1;
            if (shape.Cross)
            {
                encoder = f.Input("encoded", Shape.Of(Dims.Batch, Dims.SourceTime, d.Hidden));
                encoderMask = f.Input("sourceMask", Shape.Of(Dims.Batch, Dims.SourceTime), ElementType.Bool, InputRole.SourceMask);
            }

            x = Residual(f, x, Role.AttentionNorm, stack, h => f.Call(attention, new[] { h }.Concat(shared).ToArray())[0]);
            if (shape.Cross)
                x = Residual(f, x, Role.CrossAttentionNorm, stack, h => f.Call(crossAttention, h, encoder, encoderMask)[0]);
            x = Residual(f, x, Role.FeedForwardNorm, stack, h => f.Call(feedForward, h)[0]);
            f.Return(x);
        }

        private string LayerSummary(string stack, bool pre, bool cross, string feedForward)
        {
            string ffn = feedForward.Contains("MixtureOfExperts") ? "mixture of experts" : "feed-forward";
            string crossPart = cross ? ", cross-attention over the encoder states" : "";
            return pre
                ? $"One {stack.ToLowerInvariant()} layer (pre-norm): x + attention(norm(x)){crossPart}, then x + {ffn}(norm(x))."
                : $"One {stack.ToLowerInvariant()} layer (post-norm): norm(x + attention(x)){crossPart}, then norm(x + {ffn}(x)).";
        }

        /// <summary>x + sublayer(norm(x)) before the norm (pre-norm) or norm(x + sublayer(x)) after it (post-norm).</summary>
        private int Residual(FunctionBuilder f, int x, Role normRole, string stack, Func<int, int> sublayer)
        {
            var origin = f.Origin;
            (int, int) Norm() => f.NormParameters(normRole, stack, spec.Norm.Kind, d.Hidden);
            if (PreNorm)
            {
                f.Origin = NormSite;
                int h = f.Norm(x, spec.Norm.Kind, spec.Norm.Epsilon, Norm(), "h");
                f.Origin = origin;
                return f.Add(x, sublayer(h), "x");
            }
            int sum = f.Add(x, sublayer(x), "x");
            f.Origin = NormSite;
            int normed = f.Norm(sum, spec.Norm.Kind, spec.Norm.Epsilon, Norm(), "x");
            f.Origin = origin;
            return normed;
        }

        // ================================================================ sub-layers

        private string SelfAttention(string name, string stack, StackShape shape)
        {
            string summary = (shape.Mask == AttentionMask.Causal ? "Causal" : "Bidirectional") + " self-attention"
                + (spec.KvHeads == spec.Heads ? "" : spec.KvHeads == 1 ? " (multi-query)" : " (grouped-query)")
                + (spec.Attention.Window is int w ? $", each query seeing at most {w.ToString(CultureInfo.InvariantCulture)} positions" : "")
                + (shape.Padding ? ", padding masked" : "")
                + (spec.Positions.Kind == PositionKind.Rotary ? ", rotary positions on queries and keys" : "")
                + (shape.Bias ? ", relative position bias" : "")
                + ": projections, attention over heads, output projection.";
            var f = g.Begin(name, summary, stack);
            f.Origin = On(FamilyAttribute);
            int h = f.Input("h", Shape.Of(Dims.Batch, shape.Time, d.Hidden));
            int mask = shape.Padding ? f.Input("mask", Shape.Of(Dims.Batch, shape.Time), ElementType.Bool, InputRole.PaddingMask) : -1;
            int bias = shape.Bias ? f.Input("positionBias", Shape.Of(d.Heads, shape.Time, shape.Keys)) : -1;

            int q, k, v;
            if (g.Layout.FusedQueryKeyValue)
            {
                var fused = d.KvWidth == d.QueryWidth ? d.QueryWidth.Times(3)
                    : new Dim(d.QueryWidth.Symbol + "+2*" + d.KvWidth.Symbol, d.QueryWidth.Size + 2 * d.KvWidth.Size);
                int qkv = Projection(f, h, Role.QueryKeyValue, stack, d.Hidden, fused, "qkv", LoraTargets.Query | LoraTargets.Key | LoraTargets.Value);
                var parts = f.Split(qkv, ("q", d.QueryWidth), ("k", d.KvWidth), ("v", d.KvWidth));
                (q, k, v) = (parts[0], parts[1], parts[2]);
            }
            else
            {
                q = Projection(f, h, Role.Query, stack, d.Hidden, d.QueryWidth, "q", LoraTargets.Query);
                k = Projection(f, h, Role.Key, stack, d.Hidden, d.KvWidth, "k", LoraTargets.Key);
                v = Projection(f, h, Role.Value, stack, d.Hidden, d.KvWidth, "v", LoraTargets.Value);
            }
            if (spec.Positions.Kind == PositionKind.Rotary)
            {
                f.Origin = On(G.RotaryPositions);
                (q, k) = f.Rotary(q, k, spec.Positions.RotaryBase);
            }
            f.Origin = AttentionSite(shape);
            int y = f.Attention(Attention(shape.Mask, shape.Cache, shape.Padding, shape.Bias, scaled: spec.Family != ModelFamily.EncoderDecoder),
                q, k, v, mask, bias, "y");
            f.Origin = On(FamilyAttribute);
            int o = Projection(f, y, Role.AttentionOutput, stack, d.QueryWidth, d.Hidden, "o", LoraTargets.Output);
            f.Return(f.Dropout(o, spec.DropoutRate, "o"));
            return name;
        }

        private string CrossAttention(string stack)
        {
            const string name = "CrossAttention";
            var f = g.Begin(name, "Cross-attention over the encoder states: queries from the decoder, keys and values from the encoder, source padding masked.", stack);
            f.Origin = On(FamilyAttribute);
            int h = f.Input("h", Shape.Of(Dims.Batch, Dims.Time, d.Hidden));
            int encoded = f.Input("encoded", Shape.Of(Dims.Batch, Dims.SourceTime, d.Hidden));
            int mask = f.Input("sourceMask", Shape.Of(Dims.Batch, Dims.SourceTime), ElementType.Bool, InputRole.SourceMask);
            int q = Projection(f, h, Role.CrossQuery, stack, d.Hidden, d.QueryWidth, "q", LoraTargets.Query);
            int k = Projection(f, encoded, Role.CrossKey, stack, d.Hidden, d.KvWidth, "k", LoraTargets.Key);
            int v = Projection(f, encoded, Role.CrossValue, stack, d.Hidden, d.KvWidth, "v", LoraTargets.Value);
            f.Origin = spec.KvHeads != spec.Heads ? On(G.Attention, A.KvHeads) : On(FamilyAttribute);
            int y = f.Attention(Attention(AttentionMask.Bidirectional, AttentionCache.Cross, padding: true, bias: false, scaled: false),
                q, k, v, mask, -1, "y");
            f.Origin = On(FamilyAttribute);
            int o = Projection(f, y, Role.CrossOutput, stack, d.QueryWidth, d.Hidden, "o", LoraTargets.Output);
            f.Return(f.Dropout(o, spec.DropoutRate, "o"));
            return name;
        }

        private FindingSite AttentionSite(StackShape shape)
        {
            // The most specific attribute that shapes this attention, so MDSL0100 lands where the feature was asked for.
            if (spec.Attention.Window is not null) return On(G.Attention, A.Window);
            if (spec.KvHeads != spec.Heads) return On(G.Attention, A.KvHeads);
            if (shape.Bias) return On(G.RelativePositions);
            return On(FamilyAttribute);
        }

        private AttentionOp Attention(AttentionMask mask, AttentionCache cache, bool padding, bool bias, bool scaled)
            => new(mask, spec.Heads, spec.KvHeads, spec.HeadDim, mask == AttentionMask.Causal ? spec.Attention.Window : null,
                scaled, spec.DropoutRate, cache, padding, bias);

        private string FeedForward(string name, string stack, string variant)
        {
            var ffn = spec.FeedForward;
            var f = g.Begin(name, ffn.IsGated
                ? $"Gated feed-forward: down({Name(Activation(ffn.Activation))}(gate(h)) * up(h))."
                : $"Feed-forward: down({Name(Activation(ffn.Activation))}(up(h))).", stack, variant);
            f.Origin = On(FamilyAttribute);
            int h = f.Input("h", Shape.Of(Dims.Batch, stacks[stack].Time, d.Hidden));
            int u;
            if (ffn.IsGated)
            {
                f.Origin = On(G.FeedForward, A.Activation);
                int gate = Projection(f, h, Role.FeedForwardGate, stack, d.Hidden, d.Inner, "gate", LoraTargets.FeedForward);
                int up = Projection(f, h, Role.FeedForwardUp, stack, d.Hidden, d.Inner, "up", LoraTargets.FeedForward);
                u = f.Gated(gate, up, Activation(ffn.Activation), "u");
            }
            else
            {
                u = Projection(f, h, Role.FeedForwardUp, stack, d.Hidden, d.Inner, "u", LoraTargets.FeedForward);
                u = f.Activation(u, Activation(ffn.Activation), "u");
            }
            f.Origin = On(FamilyAttribute);
            int o = Projection(f, u, Role.FeedForwardDown, stack, d.Inner, d.Hidden, "o", LoraTargets.FeedForward);
            f.Return(f.Dropout(o, spec.DropoutRate, "o"));
            return name;
        }

        private string MixtureOfExperts(string name, string stack, string variant)
        {
            var moe = spec.Experts!;
            var ffn = spec.FeedForward;
            var f = g.Begin(name, $"Sparse mixture of experts: each token goes to its top {moe.TopK.ToString(CultureInfo.InvariantCulture)} of {d.Experts.Size.ToString(CultureInfo.InvariantCulture)} "
                + (ffn.IsGated ? "gated " : "") + "feed-forward experts, weighted by the router's " + (moe.TopK > 1 ? "renormalised probabilities" : "probability")
                + "; the load-balancing loss goes to the task loss.", stack, variant);
            f.Origin = On(G.MixtureOfExperts);
            int h = f.Input("h", Shape.Of(Dims.Batch, stacks[stack].Time, d.Hidden));
            // The router is Mixtral's and Switch's nn.Linear [Experts, Hidden] in every layout, GPT-2's included.
            int gate = f.LinearParameters(Role.Router, stack, d.Hidden, d.Experts, bias: false, init.Normal(Role.Router), orientation: WeightLayout.OutIn).Weight;
            var (weights, selected, logits) = f.Router(h, gate, moe.TopK, renormalize: moe.TopK > 1);
            var expertParameters = new List<int>
            {
                f.LinearParameters(Role.ExpertUp, stack, d.Hidden, d.Inner, bias: false, init.Normal(Role.ExpertUp), d.Experts.Size).Weight,
            };
            if (ffn.IsGated)
                expertParameters.Add(f.LinearParameters(Role.ExpertGate, stack, d.Hidden, d.Inner, bias: false, init.Normal(Role.ExpertGate), d.Experts.Size).Weight);
            expertParameters.Add(f.LinearParameters(Role.ExpertDown, stack, d.Inner, d.Hidden, bias: false, init.Normal(Role.ExpertDown), d.Experts.Size).Weight);
            int y = f.Experts(h, weights, selected, expertParameters.ToArray(), Activation(ffn.Activation), ffn.IsGated, "o");
            f.RouterLoss(logits, selected, moe.AuxLossWeight, moe.ZLossWeight);
            f.Return(f.Dropout(y, spec.DropoutRate, "o"));
            return name;
        }

        /// <summary>A linear projection for a role, plus its LoRA update when [Lora] targets it.</summary>
        private int Projection(FunctionBuilder f, int x, Role role, string stack, Dim input, Dim output, string name, LoraTargets target)
        {
            bool bias = role is Role.FeedForwardUp or Role.FeedForwardGate or Role.FeedForwardDown ? spec.FeedForward.Bias : spec.Attention.Bias;
            int y = f.Linear(x, f.LinearParameters(role, stack, input, output, bias, init.Normal(role)), name);
            if (spec.Lora is { } lora && (lora.Targets & target) != 0)
            {
                var origin = f.Origin;
                f.Origin = On(G.Lora);
                int delta = f.LowRank(x, f.LoraParameters(role, stack, input, output), lora.Alpha / lora.Rank, name + "Lora");
                y = f.Add(y, delta, name);
                f.Origin = origin;
            }
            return y;
        }

        private static string Name(ActivationKind activation) => activation switch
        {
            ActivationKind.GeluTanh => "gelu_tanh",
            _ => activation.ToString().ToLowerInvariant(),
        };

        private static ActivationKind Activation(Spec.Activation activation) => activation switch
        {
            Spec.Activation.GeluTanh => ActivationKind.GeluTanh,
            Spec.Activation.Relu => ActivationKind.Relu,
            Spec.Activation.SwiGlu => ActivationKind.Silu,
            // T5 v1.1's "gated-gelu" gates with gelu_new, GELU's tanh approximation.
            Spec.Activation.GeGlu => ActivationKind.GeluTanh,
            _ => ActivationKind.Gelu,
        };
    }
}
