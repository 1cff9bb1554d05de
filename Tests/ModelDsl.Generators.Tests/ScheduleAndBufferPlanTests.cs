using System.Linq;
using ModelDsl.Generators.Ir;
using ModelDsl.Generators.Ir.Analysis;
using Xunit;
using static ModelDsl.Generators.Tests.GraphTestSupport;

namespace ModelDsl.Generators.Tests
{
    /// <summary>What every backend derives from the graph: the forward and backward schedules, the buffer plan, FLOPs.</summary>
    public sealed class ScheduleAndBufferPlanTests
    {
        private static readonly ModelGraph Gpt2 = Graph(OpGraphTests.Gpt2Small);
        private const long C = 768, L = 12, NH = 12, V = 50257;

        [Fact]
        public void The_forward_schedule_inlines_every_layer_and_ends_with_the_loss()
        {
            var schedule = Schedule.Of(Gpt2);
            // wte, wpe; per layer ln_1, c_attn, split, attention, c_proj, add, ln_2, c_fc, gelu, c_proj, add; ln_f, head, loss.
            Assert.Equal(2 + 11 * L + 3, schedule.Forward.Count);
            Assert.IsType<EmbeddingOp>(schedule.Forward[0].Op);
            Assert.IsType<CrossEntropyOp>(schedule.Forward[^1].Op);
            Assert.Equal(Enumerable.Range(0, 12), schedule.Forward.Where(s => s.Op is AttentionOp).Select(s => s.Layer));
            // Layer l's first norm reads layer l-1's last residual sum: the stack carries the value.
            var adds = schedule.Forward.Where(s => s.Op is AddOp).ToList();
            var norms = schedule.Forward.Where(s => s.Op is NormOp).ToList();
            Assert.Equal(adds[1].Outputs[0], norms[2].Inputs[0]);
        }

        [Fact]
        public void The_backward_schedule_is_the_reverse_and_names_what_each_step_reads()
        {
            var schedule = Schedule.Of(Gpt2);
            Assert.Equal(schedule.Forward.Reverse(), schedule.Backward.Select(b => b.Forward));
            var attention = schedule.Backward.First(b => b.Forward.Op is AttentionOp);
            Assert.Equal(4, attention.Saved.Count); // q, k, v and the output
            Assert.Equal("lse", attention.Statistics.Single().Name);
            Assert.Empty(schedule.Backward.First(b => b.Forward.Op is AddOp).Saved);
            var loss = schedule.Backward[0];
            Assert.IsType<CrossEntropyOp>(loss.Forward.Op);
            Assert.Equal("lse", loss.Statistics.Single().Name); // the logits and one number per row, no probabilities
        }

        /// <summary>
        /// GPT-2 small's activations per token, counted by hand from llm.c's list (train_gpt2.c, fill_in_activation_sizes)
        /// and what our schedule keeps instead. Kept for the backward, one copy per layer: ln_1 and ln_2 outputs (C each,
        /// the inputs of c_attn and c_fc), qkv (3C; q, k and v are views of it), the attention output (C), the two
        /// residual sums (C each), the c_fc output and its GELU (4C each): 16C per layer, as llm.c's ln1, qkv, atty,
        /// residual2, ln2, fch, fch_gelu, residual3. Outside the layers: the embedding sum (C, llm.c's encoded), ln_f's
        /// output (C) and the logits (V). Statistics: mean and 1/std of three norms (2 + 2 per layer, 2 for ln_f), the
        /// attention log-sum-exp (NH per layer), the loss log-sum-exp (1). Not kept, one reused copy each: the token
        /// embedding before the positions are added, and the two c_proj outputs (llm.c keeps attproj and fcproj; their
        /// backward needs only the gradient). llm.c's preatt and att (2 NH T per layer) and probs (V) do not exist here:
        /// flash attention and fused cross-entropy recompute them.
        /// </summary>
        [Fact]
        public void Gpt2_small_buffer_plan_matches_a_hand_count()
        {
            var plan = BufferPlan.Of(Schedule.Of(Gpt2));
            long Sum(BufferKind kind, int batch, int time)
                => plan.Buffers.Where(b => b.Kind == kind).Sum(b => Shape.Elements(b.Shape, batch, time, time) * b.Copies);
            const int B = 4, T = 64;
            Assert.Equal(B * T * (C + 16 * C * L + C + V), Sum(BufferKind.Saved, B, T));
            Assert.Equal(B * T * (4 * L + 2 + NH * L + 1), Sum(BufferKind.Statistic, B, T));
            Assert.Equal(B * T * 3 * C + 1, Sum(BufferKind.Transient, B, T)); // + the scalar loss
            Assert.Equal(2L * B * T, Sum(BufferKind.Input, B, T));             // ids and targets (int64)
            Assert.Equal(4 * 124_439_808L, plan.ParameterStateElements);       // weights, gradients, two AdamW moments
            long bytes = 4 * (B * T * (C + 16 * C * L + C + V) + B * T * (4 * L + 2 + NH * L + 1) + B * T * 3 * C + 1);
            Assert.Equal(bytes, plan.ActivationBytes(B, T, T));
        }

        [Fact]
        public void Forward_flops_count_the_matrix_products_of_every_op()
        {
            var terms = Flops.Forward(Schedule.Of(Gpt2));
            const int T = 1024;
            // Per token: 2 x (qkv 3C^2 + proj C^2 + fc 4C^2 + proj 4C^2) per layer, the tied head 2 C V, and attention 4 T C per layer.
            double expected = L * 2 * 12 * C * C + 2 * C * V + L * 4.0 * T * C;
            Assert.Equal(expected, CostTerms.At(terms, 1, T, T) / T, 6);
        }

        [Fact]
        public void Expert_layers_count_only_the_routed_experts()
        {
            var dense = Graph("[Decoder(Vocab = 64, Context = 32, Hidden = 32, Heads = 4, Layers = 2), FeedForward(Inner = 64)] public partial record M;");
            var sparse = Graph("[Decoder(Vocab = 64, Context = 32, Hidden = 32, Heads = 4, Layers = 2), FeedForward(Inner = 64), MixtureOfExperts(Experts = 8, TopK = 2)] public partial record M;");
            double Flops(ModelGraph g) => CostTerms.At(ModelDsl.Generators.Ir.Analysis.Flops.Forward(Schedule.Of(g)), 1, 16, 16);
            // Two experts per token cost twice the dense feed-forward, plus the router (2 x 32 x 8 per token and layer).
            double feedForward = 2 * 16 * (2 * 32 * 64 * 2.0);
            Assert.Equal(Flops(dense) + feedForward + 2 * 16 * 2 * 32 * 8, Flops(sparse), 6);
        }

        /// <summary>
        /// ViT-B/16 at 224 x 224 has no run-time sequence: 196 patches + the class token = 197 positions, fixed. By hand:
        /// the patch projection 2 x 196 x (3 x 16 x 16) x 768; per layer and position 2 x (4 C^2 + 2 C x 3072) for the
        /// projections and 4 x 197 x C for attention; the classifier 2 x C x 1000 once. That is 35.1 GFLOPs per image,
        /// the 17.6 G multiply-adds usually quoted for ViT-B/16, whatever time is passed.
        /// </summary>
        [Fact]
        public void Vit_forward_flops_are_fixed_by_the_image_size()
        {
            var vit = Graph("[VisionEncoder(ImageSize = 224, PatchSize = 16, Channels = 3, Hidden = 768, Heads = 12, Layers = 12, Classes = 1000), FeedForward(Inner = 3072)] public partial record M;");
            var terms = Flops.Forward(Schedule.Of(vit));
            const double P = 197;
            double expected = 2.0 * 196 * (3 * 16 * 16) * C + L * P * (2.0 * (4 * C * C + 2 * C * 3072) + 4 * P * C) + 2.0 * C * 1000;
            Assert.Equal(expected, CostTerms.At(terms, 1, 1, 1), 6);
            Assert.Equal(expected, CostTerms.At(terms, 1, 197, 197), 6);
            Assert.Equal(3 * expected, CostTerms.At(terms, 3, 64, 64), 6);
        }
    }
}
