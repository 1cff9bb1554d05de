using System;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using ModelDsl.Generators.Ir;
using ModelDsl.Generators.Ir.Analysis;
using Xunit;
using static ModelDsl.Generators.Tests.GraphTestSupport;

namespace ModelDsl.Generators.Tests
{
    /// <summary>The op graph of every family: published parameter counts, Hugging Face names, stacks that vary by layer.</summary>
    public sealed class OpGraphTests
    {
        public const string Gpt2Small = """
            [Decoder(Vocab = 50257, Context = 1024, Hidden = 768, Heads = 12, Layers = 12)]
            [FeedForward(Inner = 3072, Activation = Activation.GeluTanh)]
            [LearnedPositions, PreNorm, TiedEmbeddings]
            public partial record M;
            """;

        // Hugging Face's counts: model.num_parameters() of the named checkpoints' classes.
        [Theory]
        [InlineData("gpt2 (GPT2LMHeadModel, lm_head tied to wte)", Gpt2Small, 124_439_808L)]
        [InlineData("gpt2 with PEFT's LoraConfig(r=8, target_modules=[\"c_attn\"]): print_trainable_parameters() says 294,912 trainable of 124,734,720", """
            [Decoder(Vocab = 50257, Context = 1024, Hidden = 768, Heads = 12, Layers = 12)]
            [FeedForward(Inner = 3072, Activation = Activation.GeluTanh)]
            [LearnedPositions, PreNorm, TiedEmbeddings, Lora(Rank = 8, Targets = LoraTargets.Query | LoraTargets.Value)]
            public partial record M;
            """, 124_734_720L)]
        [InlineData("bert-base-uncased (BertForMaskedLM: no pooler, MLM transform, tied decoder, its bias)", """
            [Encoder(Vocab = 30522, Context = 512, Hidden = 768, Heads = 12, Layers = 12)]
            [FeedForward(Inner = 3072), SegmentEmbeddings(Types = 2), PostNorm(Epsilon = 1e-12), TiedEmbeddings]
            public partial record M;
            """, 109_514_298L)]
        [InlineData("bert-base-uncased (BertForSequenceClassification, 2 labels: pooler and classifier)", """
            [Encoder(Vocab = 30522, Context = 512, Hidden = 768, Heads = 12, Layers = 12)]
            [FeedForward(Inner = 3072), SegmentEmbeddings(Types = 2), ClassificationHead(Classes = 2)]
            public partial record M;
            """, 109_483_778L)]
        [InlineData("t5-small (T5ForConditionalGeneration, tied)", """
            [EncoderDecoder(Vocab = 32128, Context = 512, Hidden = 512, Heads = 8, EncoderLayers = 6, DecoderLayers = 6)]
            [Attention(HeadDim = 64, Bias = false), FeedForward(Inner = 2048, Activation = Activation.Relu, Bias = false)]
            [TiedEmbeddings]
            public partial record M;
            """, 60_506_624L)]
        [InlineData("google/vit-base-patch16-224 (ViTForImageClassification)", """
            [VisionEncoder(ImageSize = 224, PatchSize = 16, Channels = 3, Hidden = 768, Heads = 12, Layers = 12, Classes = 1000)]
            [FeedForward(Inner = 3072)]
            public partial record M;
            """, 86_567_656L)]
        [InlineData("meta-llama/Llama-2-7b-hf (LlamaForCausalLM)", """
            [Decoder(Vocab = 32000, Context = 4096, Hidden = 4096, Heads = 32, Layers = 32)]
            [Attention(Bias = false), FeedForward(Inner = 11008, Activation = Activation.SwiGlu, Bias = false)]
            [RotaryPositions, PreNorm(Kind = NormKind.RmsNorm, Epsilon = 1e-5)]
            public partial record M;
            """, 6_738_415_616L)]
        [InlineData("mistralai/Mixtral-8x7B-v0.1 (MixtralForCausalLM)", """
            [Decoder(Vocab = 32000, Context = 32768, Hidden = 4096, Heads = 32, Layers = 32)]
            [Attention(KvHeads = 8, Bias = false), FeedForward(Inner = 14336, Activation = Activation.SwiGlu, Bias = false)]
            [RotaryPositions(Base = 1e6), PreNorm(Kind = NormKind.RmsNorm, Epsilon = 1e-5)]
            [MixtureOfExperts(Experts = 8, TopK = 2)]
            public partial record M;
            """, 46_702_792_704L)]
        public void Parameter_counts_equal_Hugging_Faces_published_counts(string checkpoint, string declaration, long expected)
            => Assert.True(Graph(declaration).ParameterCount == expected, $"{checkpoint}: {Graph(declaration).ParameterCount:N0}, expected {expected:N0}");

        [Fact]
        public void Every_example_of_docs_dsl_md_builds_with_its_familys_layout()
        {
            var docs = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "docs", "dsl.md"));
            int start = docs.IndexOf("## One example per family", StringComparison.Ordinal);
            var block = Regex.Match(docs.Substring(start), "```csharp\n(.*?)```", RegexOptions.Singleline).Groups[1].Value;
            var expected = new[] { ("Gpt2Small", "GPT-2"), ("BertBase", "BERT"), ("T5V11Small", "T5"), ("VitBase16", "ViT"), ("Mixtral8x7B", "Mixtral") };
            foreach (var (name, layout) in expected)
            {
                var graph = Graph(block, name);
                Assert.Equal(layout, graph.Layout);
                Assert.True(graph.ParameterCount > 0);
            }
        }

        [Fact]
        public void Gpt2_names_are_Hugging_Faces_with_conv1d_layouts()
        {
            var graph = Graph(Gpt2Small);
            var names = graph.Parameters.SelectMany(p => p.InstancePaths()).ToList();
            Assert.Equal(12 * 12 + 4, names.Count);
            Assert.Contains("transformer.wte.weight", names);
            Assert.Contains("transformer.h.11.attn.c_attn.weight", names);
            Assert.Contains("transformer.ln_f.bias", names);
            Assert.DoesNotContain("lm_head.weight", names); // tied: the head uses wte
            var cAttn = graph.Parameters.Single(p => p.Path == "transformer.h.{layer}.attn.c_attn.weight");
            Assert.Equal("[Hidden=768, 3*Hidden=2304]", Shape.Format(cAttn.Shape));
            Assert.Equal(12, cAttn.Layers.Count);
        }

        [Fact]
        public void T5_holds_its_relative_bias_in_block_zero_of_each_stack_and_numbers_decoder_sublayers()
        {
            var graph = Graph("""
                [EncoderDecoder(Vocab = 100, Context = 32, Hidden = 32, Heads = 4, EncoderLayers = 2, DecoderLayers = 3)]
                [Attention(HeadDim = 16, Bias = false), FeedForward(Inner = 64, Activation = Activation.GeGlu, Bias = false)]
                public partial record M;
                """);
            var names = graph.Parameters.SelectMany(p => p.InstancePaths()).ToHashSet();
            Assert.Contains("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", names);
            Assert.Contains("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", names);
            Assert.DoesNotContain("decoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight", names);
            Assert.Contains("decoder.block.2.layer.1.EncDecAttention.k.weight", names);
            Assert.Contains("decoder.block.2.layer.2.DenseReluDense.wi_0.weight", names);
            Assert.Contains("encoder.block.1.layer.1.DenseReluDense.wi_1.weight", names);
            Assert.Contains("lm_head.weight", names); // untied
            var q = graph.Parameters.Single(p => p.Path == "encoder.block.{layer}.layer.0.SelfAttention.q.weight");
            Assert.Equal("[Heads*HeadDim=64, Hidden=32]", Shape.Format(q.Shape)); // d_kv x heads need not be Hidden
        }

        [Fact]
        public void Switch_style_stacks_alternate_dense_and_expert_layers()
        {
            var graph = Graph("""
                [Decoder(Vocab = 100, Context = 32, Hidden = 32, Heads = 4, Layers = 4)]
                [MixtureOfExperts(Experts = 4, TopK = 1, Every = 2)]
                public partial record M;
                """);
            var stack = graph.Stack("Decoder");
            Assert.Equal(new[] { "DecoderLayer", "ExpertDecoderLayer" }, stack.Variants);
            Assert.Equal(new[] { 0, 1, 0, 1 }, stack.VariantOfLayer);
            var names = graph.Parameters.SelectMany(p => p.InstancePaths()).ToHashSet();
            Assert.Contains("transformer.h.0.mlp.c_fc.weight", names);
            Assert.DoesNotContain("transformer.h.1.mlp.c_fc.weight", names);
            Assert.Contains("transformer.h.1.mlp.gate.weight", names);
            Assert.Contains("transformer.h.3.mlp.experts.3.c_proj.weight", names);
            var gate = graph.Parameters.Single(p => p.Path == "transformer.h.{layer}.mlp.gate.weight");
            Assert.Equal("[Experts=4, Hidden=32]", Shape.Format(gate.Shape)); // Mixtral's nn.Linear, not GPT-2's Conv1D
            Assert.Equal(ModuleKind.Linear, gate.Module);
            Assert.Equal(new[] { 1, 3 }, gate.Layers);
            Assert.Contains("transformer.h.2.ln_2.weight", names); // norms are in every layer
            Assert.Equal(new[] { 0, 1, 2, 3 }, graph.Parameters.Single(p => p.Path == "transformer.h.{layer}.ln_2.weight").Layers);
        }

        [Fact]
        public void Bert_and_vit_use_their_own_names()
        {
            var bert = Graph("""
                [Encoder(Vocab = 100, Context = 32, Hidden = 32, Heads = 4, Layers = 2), SegmentEmbeddings, TiedEmbeddings]
                public partial record M;
                """).Parameters.SelectMany(p => p.InstancePaths()).ToHashSet();
            Assert.Contains("bert.embeddings.LayerNorm.weight", bert);
            Assert.Contains("bert.encoder.layer.1.attention.self.query.weight", bert);
            Assert.Contains("bert.encoder.layer.1.output.LayerNorm.bias", bert);
            Assert.Contains("cls.predictions.transform.LayerNorm.weight", bert);
            Assert.Contains("cls.predictions.bias", bert);

            var vit = Graph("""
                [VisionEncoder(ImageSize = 32, PatchSize = 8, Channels = 1, Hidden = 32, Heads = 4, Layers = 2, Classes = 10)]
                public partial record M;
                """);
            var names = vit.Parameters.SelectMany(p => p.InstancePaths()).ToHashSet();
            Assert.Contains("vit.embeddings.cls_token", names);
            Assert.Contains("vit.embeddings.patch_embeddings.projection.weight", names);
            Assert.Contains("vit.encoder.layer.1.layernorm_after.weight", names);
            Assert.Contains("classifier.bias", names);
            Assert.Equal("[1, Patches+1=17, Hidden=32]", Shape.Format(vit.Parameters.Single(p => p.Name == "position_embeddings").Shape));
        }

        [Fact]
        public void Every_op_records_the_attribute_that_asked_for_it()
        {
            var graph = Graph("""
                [Decoder(Vocab = 100, Context = 32, Hidden = 32, Heads = 4, Layers = 2)]
                [RotaryPositions, Lora(Rank = 2)]
                public partial record M;
                """);
            Assert.All(graph.AllOps().Where(p => p.Op is RotaryOp), p => Assert.Equal("RotaryPositions", p.Op.Origin.Attribute));
            Assert.All(graph.AllOps().Where(p => p.Op is LowRankOp), p => Assert.Equal("Lora", p.Op.Origin.Attribute));
            Assert.All(graph.AllOps().Select(p => p.Op), op => Assert.NotNull(op.Origin.Attribute));
        }
    }
}
