using System;
using ModelDsl.Generators.Ir;
using ModelDsl.Generators.Ir.Layouts;
using Xunit;
using Support = ModelDsl.Generators.Tests.GraphTestSupport;

namespace ModelDsl.Generators.Tests
{
    /// <summary>
    /// Every op kind infers its output shape from its inputs and parameters, and refuses inputs that do not fit with a
    /// message naming the model, the op, the tensor and the dimension. Dimensions agree only when their meaning does:
    /// [Hidden=64] does not fit [Inner=64].
    /// </summary>
    public sealed class ShapeInferenceTests
    {
        private const string Decoder = """
            [Decoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 1)]
            [Attention(KvHeads = 2), FeedForward(Inner = 32)]
            public partial record M;
            """;

        private readonly GraphBuilder graph = new(Support.Spec(Decoder));
        private readonly FunctionBuilder f;
        private readonly Dims d;

        public ShapeInferenceTests()
        {
            f = graph.Begin("Test", "shape inference");
            d = graph.Dims;
        }

        private string ShapeOf(int value) => Shape.Format(graph.Value(value).Shape);

        private int Activations(params Dim[] shape) => f.Input("x" + Guid.NewGuid().ToString("N").Substring(0, 4), Shape.Of(shape));

        private void Fails(Action op, params string[] mentions)
        {
            var e = Assert.Throws<GraphShapeException>(op);
            Assert.StartsWith("M: ", e.Message);
            foreach (var text in mentions) Assert.Contains(text, e.Message);
        }

        [Fact]
        public void Embedding_appends_the_tables_width_and_needs_int64_ids()
        {
            int table = f.EmbeddingTable(Role.TokenEmbedding, d.Vocab, d.Hidden, InitRule.Normal(0.02, "0.02"));
            int ids = f.Input("ids", Shape.Of(Dims.Batch, Dims.Time), ElementType.Int64);
            Assert.Equal("[Batch, Time, Hidden=32]", ShapeOf(f.Embedding(ids, table, "x")));
            int floats = f.Input("floats", Shape.Of(Dims.Batch, Dims.Time));
            Fails(() => f.Embedding(floats, table, "x"), "Embedding", "'floats'", "Int64");
        }

        [Fact]
        public void Add_broadcasts_a_suffix_and_refuses_dimensions_of_another_meaning()
        {
            int x = Activations(Dims.Batch, Dims.Time, d.Hidden);
            Assert.Equal("[Batch, Time, Hidden=32]", ShapeOf(f.Add(x, Activations(d.Hidden), "y")));
            // Inner and Hidden are both 32 here: the sizes agree, the meanings do not.
            Fails(() => f.Add(x, Activations(Dims.Batch, Dims.Time, d.Inner), "y"), "Add", "Inner=32", "does not broadcast");
        }

        [Fact]
        public void Linear_maps_the_weights_input_dimension_to_its_output()
        {
            var head = f.LinearParameters(Role.LmHead, "", d.Hidden, d.Vocab, bias: false, InitRule.Normal(0.02, "0.02"), orientation: WeightLayout.OutIn);
            Assert.Equal("[Batch, Time, Vocab=50]", ShapeOf(f.Linear(Activations(Dims.Batch, Dims.Time, d.Hidden), head, "logits", WeightLayout.OutIn)));
            Fails(() => f.Linear(Activations(Dims.Batch, Dims.Time, d.Inner), head, "logits", WeightLayout.OutIn),
                "Linear", "[Batch, Time, Inner=32]", "input dimension Hidden=32");
        }

        [Fact]
        public void Norm_keeps_the_shape_and_needs_its_width()
        {
            var norm = f.NormParameters(Role.FinalNorm, "", Generators.Spec.NormKind.LayerNorm, d.Hidden);
            Assert.Equal("[Batch, Time, Hidden=32]", ShapeOf(f.Norm(Activations(Dims.Batch, Dims.Time, d.Hidden), Generators.Spec.NormKind.LayerNorm, 1e-5, norm, "h")));
            Fails(() => f.Norm(Activations(Dims.Batch, Dims.Time, d.Vocab), Generators.Spec.NormKind.LayerNorm, 1e-5, norm, "h"), "Norm", "Vocab=50");
        }

        [Fact]
        public void Split_cuts_the_last_dimension_into_widths_that_sum_to_it()
        {
            var fused = new Dim("Hidden+2*KvHeads*HeadDim", 32 + 2 * 16);
            var parts = f.Split(Activations(Dims.Batch, Dims.Time, fused), ("q", d.QueryWidth), ("k", d.KvWidth), ("v", d.KvWidth));
            Assert.Equal("[Batch, Time, KvHeads*HeadDim=16]", ShapeOf(parts[1]));
            Fails(() => f.Split(Activations(Dims.Batch, Dims.Time, fused), ("q", d.QueryWidth), ("k", d.KvWidth)), "Split", "cannot be split");
        }

        private AttentionOp Attention(bool padding = false)
            => new(AttentionMask.Causal, 4, 2, 8, null, true, 0, AttentionCache.None, padding, false);

        [Fact]
        public void Attention_takes_grouped_keys_and_returns_the_query_width()
        {
            int q = Activations(Dims.Batch, Dims.Time, d.QueryWidth);
            int k = Activations(Dims.Batch, Dims.Time, d.KvWidth);
            int v = Activations(Dims.Batch, Dims.Time, d.KvWidth);
            Assert.Equal("[Batch, Time, Hidden=32]", ShapeOf(f.Attention(Attention(), q, k, v, -1, -1, "y")));
            Fails(() => f.Attention(Attention(), q, q, v, -1, -1, "y"), "Attention", "KvHeads*HeadDim");
            int floatMask = Activations(Dims.Batch, Dims.Time);
            Fails(() => f.Attention(Attention(padding: true), q, k, v, floatMask, -1, "y"), "Attention", "Bool");
        }

        [Fact]
        public void Rotary_keeps_query_and_key_shapes()
        {
            var (q, k) = f.Rotary(Activations(Dims.Batch, Dims.Time, d.QueryWidth), Activations(Dims.Batch, Dims.Time, d.KvWidth), 10000);
            Assert.Equal("[Batch, Time, KvHeads*HeadDim=16]", ShapeOf(k));
            Fails(() => f.Rotary(Activations(Dims.Batch, Dims.Time, d.QueryWidth), Activations(Dims.Batch, Dims.Time, d.QueryWidth), 10000), "Rotary", "key width");
        }

        [Fact]
        public void Relative_position_bias_is_heads_by_queries_by_keys()
        {
            int table = f.EmbeddingTable(Role.RelativeBias, d.Buckets, d.Heads, InitRule.Normal(0.02, "0.02"));
            Assert.Equal("[Heads=4, Time, KeyTime]", ShapeOf(f.RelativePositionBias(Activations(Dims.Batch, Dims.Time, d.Hidden), table, true, "bias")));
            int wrong = f.EmbeddingTable(Role.PositionEmbedding, d.Context, d.Hidden, InitRule.Normal(0.02, "0.02"));
            Fails(() => f.RelativePositionBias(Activations(Dims.Batch, Dims.Time, d.Hidden), wrong, true, "bias"), "RelativePositionBias", "[Buckets=32, Heads=4]");
        }

        [Fact]
        public void Gated_activation_needs_equal_gate_and_up()
        {
            int gate = Activations(Dims.Batch, Dims.Time, d.Inner);
            Assert.Equal("[Batch, Time, Inner=32]", ShapeOf(f.Gated(gate, Activations(Dims.Batch, Dims.Time, d.Inner), ActivationKind.Silu, "u")));
            Fails(() => f.Gated(gate, Activations(Dims.Batch, Dims.Time, d.Hidden), ActivationKind.Silu, "u"), "GatedActivation");
        }

        [Fact]
        public void Patches_class_token_and_first_token_selection_shape_the_sequence()
        {
            var vision = new GraphBuilder(Support.Spec("[VisionEncoder(ImageSize = 32, PatchSize = 8, Channels = 3, Hidden = 32, Heads = 4, Layers = 1, Classes = 10)] public partial record M;"));
            var g = vision.Begin("Test", "vision");
            var v = vision.Dims;
            int pixels = g.Input("pixels", Shape.Of(Dims.Batch, v.Channels, v.Image, v.Image));
            int x = g.PatchEmbedding(pixels, g.PatchParameters(Role.PatchProjection, InitRule.Normal(0.02, "0.02")), "x");
            Assert.Equal("[Batch, Patches=16, Hidden=32]", Shape.Format(vision.Value(x).Shape));
            int withToken = g.ClassToken(x, g.BareParameter(Role.ClassToken, Shape.Of(Dims.One, Dims.One, v.Hidden), InitRule.Zeros), "x");
            Assert.Equal("[Batch, Patches+1=17, Hidden=32]", Shape.Format(vision.Value(withToken).Shape));
            Assert.Equal("[Batch, Hidden=32]", Shape.Format(vision.Value(g.SelectToken(withToken, 0, "first")).Shape));
            int grey = g.Input("grey", Shape.Of(Dims.Batch, Dims.One, v.Image, v.Image));
            var e = Assert.Throws<GraphShapeException>(() => g.PatchEmbedding(grey, g.PatchParameters(Role.PatchProjection, InitRule.Zeros), "x"));
            Assert.Contains("Channels=3", e.Message);
            Fails(() => f.SelectToken(Activations(Dims.Batch, d.Hidden), 0, "first"), "SelectToken");
        }

        [Fact]
        public void Cross_entropy_needs_targets_shaped_like_the_logits_without_classes()
        {
            int logits = Activations(Dims.Batch, Dims.Time, d.Vocab);
            int targets = f.Input("targets", Shape.Of(Dims.Batch, Dims.Time), ElementType.Int64);
            Assert.Equal("[]", ShapeOf(f.CrossEntropy(logits, targets, "loss")));
            int labels = f.Input("labels", Shape.Of(Dims.Batch), ElementType.Int64);
            Fails(() => f.CrossEntropy(logits, labels, "loss"), "CrossEntropy", "'labels'");
        }

        [Fact]
        public void Low_rank_updates_map_through_the_rank()
        {
            var lora = new GraphBuilder(Support.Spec("[Decoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 1), Lora(Rank = 4)] public partial record M;"));
            var g = lora.Begin("Test", "lora");
            var adapters = g.LoraParameters(Role.LmHead, "", lora.Dims.Hidden, lora.Dims.Vocab);
            int x = g.Input("x", Shape.Of(Dims.Batch, Dims.Time, lora.Dims.Hidden));
            Assert.Equal("[Batch, Time, Vocab=50]", Shape.Format(lora.Value(g.LowRank(x, adapters, 2.0, "delta")).Shape));
            int wrong = g.Input("wrong", Shape.Of(Dims.Batch, Dims.Time, lora.Dims.Vocab));
            Assert.Throws<GraphShapeException>(() => g.LowRank(wrong, adapters, 2.0, "delta"));
        }

        [Fact]
        public void Routers_take_a_gate_stored_experts_by_hidden()
        {
            var moe = new GraphBuilder(Support.Spec("[Decoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 1), MixtureOfExperts(Experts = 4)] public partial record M;"));
            moe.DefineStack("Decoder", 1, new[] { "Test" }, _ => 0);
            var g = moe.Begin("Test", "router", "Decoder", "Test");
            int x = g.Input("x", Shape.Of(Dims.Batch, Dims.Time, moe.Dims.Hidden));
            var gate = g.LinearParameters(Role.Router, "", moe.Dims.Hidden, moe.Dims.Experts, bias: false, InitRule.Normal(0.02, "0.02"), orientation: WeightLayout.OutIn);
            var (weights, experts, logits) = g.Router(x, gate.Weight, 2, renormalize: true);
            Assert.Equal("[Tokens, TopK=2]", Shape.Format(moe.Value(weights).Shape));
            Assert.Equal("[Tokens, Experts=4]", Shape.Format(moe.Value(logits).Shape));
            // A Conv1D-style [Hidden, Experts] gate would multiply the wrong axis at run time.
            var transposed = g.LinearParameters(Role.FeedForwardUp, "", moe.Dims.Hidden, moe.Dims.Experts, bias: false, InitRule.Normal(0.02, "0.02"), orientation: WeightLayout.InOut);
            var e = Assert.Throws<GraphShapeException>(() => g.Router(x, transposed.Weight, 2, renormalize: true));
            Assert.Contains("M: Router in Test: the gate [Hidden=32, Experts=4] must be [Experts=4, Hidden=32]", e.Message);
        }

        [Fact]
        public void Calls_check_their_arguments_against_the_callees_inputs()
        {
            var callee = graph.Begin("Callee", "identity");
            int input = callee.Input("h", Shape.Of(Dims.Batch, Dims.Time, d.Hidden));
            callee.Return(input);
            Assert.Equal("[Batch, Time, Hidden=32]", ShapeOf(f.Call("Callee", Activations(Dims.Batch, Dims.Time, d.Hidden))[0]));
            Fails(() => f.Call("Callee", Activations(Dims.Batch, Dims.Time, d.Vocab)), "Call Callee", "does not fit");
        }

        [Fact]
        public void Learned_positions_need_the_tables_width_and_sinusoidal_ones_an_even_width()
        {
            int table = f.EmbeddingTable(Role.PositionEmbedding, d.Context, d.Hidden, InitRule.Normal(0.02, "0.02"));
            int x = Activations(Dims.Batch, Dims.Time, d.Hidden);
            Assert.Equal("[Batch, Time, Hidden=32]", ShapeOf(f.LearnedPositions(x, table, "x")));
            Fails(() => f.LearnedPositions(Activations(Dims.Batch, Dims.Time, d.Inner), table, "x"), "LearnedPositions", "Inner=32", "the table's width");

            Assert.Equal("[Batch, Time, Hidden=32]", ShapeOf(f.SinusoidalPositions(x, "x")));
            Fails(() => f.SinusoidalPositions(Activations(Dims.Batch, Dims.Time, new Dim("Odd", 33)), "x"), "SinusoidalPositions", "Odd=33", "even width");
        }

        [Fact]
        public void Experts_keep_the_width_and_need_int64_expert_indices()
        {
            var moe = new GraphBuilder(Support.Spec("[Decoder(Vocab = 50, Context = 16, Hidden = 32, Heads = 4, Layers = 1), FeedForward(Inner = 64), MixtureOfExperts(Experts = 4)] public partial record M;"));
            moe.DefineStack("Decoder", 1, new[] { "Test" }, _ => 0);
            var g = moe.Begin("Test", "experts", "Decoder", "Test");
            var md = moe.Dims;
            int x = g.Input("x", Shape.Of(Dims.Batch, Dims.Time, md.Hidden));
            int weights = g.Input("weights", Shape.Of(Dims.Tokens, md.TopK));
            int chosen = g.Input("chosen", Shape.Of(Dims.Tokens, md.TopK), ElementType.Int64);
            var init = InitRule.Normal(0.02, "0.02");
            int[] parameters =
            {
                g.LinearParameters(Role.ExpertUp, "", md.Hidden, md.Inner, bias: false, init, md.Experts.Size).Weight,
                g.LinearParameters(Role.ExpertDown, "", md.Inner, md.Hidden, bias: false, init, md.Experts.Size).Weight,
            };
            Assert.Equal("[Batch, Time, Hidden=32]", Shape.Format(moe.Value(g.Experts(x, weights, chosen, parameters, ActivationKind.Gelu, gated: false, "o")).Shape));
            var floats = g.Input("floats", Shape.Of(Dims.Tokens, md.TopK));
            var e = Assert.Throws<GraphShapeException>(() => g.Experts(x, weights, floats, parameters, ActivationKind.Gelu, gated: false, "o"));
            Assert.Contains("M: Experts", e.Message);
            Assert.Contains("'floats'", e.Message);
            Assert.Contains("Int64", e.Message);
            var inner = g.Input("inner", Shape.Of(Dims.Batch, Dims.Time, md.Inner));
            Assert.Throws<GraphShapeException>(() => g.Experts(inner, weights, chosen, parameters, ActivationKind.Gelu, gated: false, "o"));
        }

        [Fact]
        public void A_class_token_needs_a_sequence_of_vectors()
        {
            var vision = new GraphBuilder(Support.Spec("[VisionEncoder(ImageSize = 32, PatchSize = 8, Channels = 3, Hidden = 32, Heads = 4, Layers = 1, Classes = 10)] public partial record M;"));
            var g = vision.Begin("Test", "vision");
            int token = g.BareParameter(Role.ClassToken, Shape.Of(Dims.One, Dims.One, vision.Dims.Hidden), InitRule.Zeros);
            var e = Assert.Throws<GraphShapeException>(() => g.ClassToken(g.Input("pooled", Shape.Of(Dims.Batch, vision.Dims.Hidden)), token, "x"));
            Assert.Contains("M: ClassToken", e.Message);
            Assert.Contains("'pooled'", e.Message);
            Assert.Contains("[Batch, positions, Hidden]", e.Message);
        }

        [Fact]
        public void A_stacks_layer_body_must_return_what_it_carries_shaped_as_it_came()
        {
            graph.DefineStack("Decoder", 2, new[] { "Keeps", "Widens" }, l => l);
            var keeps = graph.Begin("Keeps", "returns its input's shape", "Decoder", "Keeps");
            keeps.Return(keeps.Input("h", Shape.Of(Dims.Batch, Dims.Time, d.Hidden)));
            var widens = graph.Begin("Widens", "returns Inner instead of Hidden", "Decoder", "Widens");
            int h = widens.Input("h", Shape.Of(Dims.Batch, Dims.Time, d.Hidden));
            widens.Return(widens.Linear(h, widens.LinearParameters(Role.FeedForwardUp, "Decoder", d.Hidden, d.Inner, bias: true, InitRule.Zeros), "u"));
            // The second layer's body ("Widens") breaks the carried shape, even though the first one keeps it.
            Fails(() => f.Repeat("Decoder", 1, Activations(Dims.Batch, Dims.Time, d.Hidden)), "Repeat Decoder", "'Widens' returns", "Inner=32");
        }
    }
}