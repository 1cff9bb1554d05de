using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using ModelDsl.Generators.Ir;
using ModelDsl.Generators.Parsing;
using Xunit;

namespace ModelDsl.Generators.Tests
{
    public sealed class BlockGraphTests
    {
        private static ModelIr Build(string declaration)
        {
            var compilation = GeneratorHarness.Compilation(false, "using ModelDsl;\n" + declaration);
            var type = (INamedTypeSymbol)compilation.GetSymbolsWithName("M").Single();
            return IrBuilder.Build(ModelParser.Parse(type, CancellationToken.None));
        }

        [Fact]
        public void Gpt2_small_has_the_published_parameter_count()
        {
            // 124,439,808: the count Hugging Face reports for "gpt2" (lm_head tied to wte, counted once).
            var ir = Build("""
                [Decoder(Vocab = 50257, Context = 1024, Hidden = 768, Heads = 12, Layers = 12)]
                [FeedForward(Inner = 3072, Activation = Activation.GeluTanh)]
                [LearnedPositions, PreNorm, TiedEmbeddings]
                public partial record M;
                """);

            Assert.Equal(124_439_808L, ir.ParameterCount);
        }

        [Fact]
        public void An_untied_head_adds_one_vocab_by_hidden_matrix()
        {
            var tied = Build("[Decoder(Vocab = 100, Context = 8, Hidden = 16, Heads = 2, Layers = 1), TiedEmbeddings] public partial record M;");
            var untied = Build("[Decoder(Vocab = 100, Context = 8, Hidden = 16, Heads = 2, Layers = 1)] public partial record M;");

            Assert.Equal(100L * 16, untied.ParameterCount - tied.ParameterCount);
        }

        [Fact]
        public void Post_norm_decoders_have_no_final_norm()
        {
            var ir = Build("[Decoder(Vocab = 100, Context = 8, Hidden = 16, Heads = 2, Layers = 1), PostNorm] public partial record M;");

            Assert.DoesNotContain(ir.Root.Child("transformer").Children, b => b.Name == "ln_f");
        }

        [Fact]
        public void Shapes_carry_their_dimension_names()
        {
            var ir = Build("[Decoder(Vocab = 100, Context = 8, Hidden = 16, Heads = 2, Layers = 3), FeedForward(Inner = 40)] public partial record M;");

            var stack = ir.Root.Child("transformer").Child("h");
            Assert.Equal(3, stack.Count);
            var cFc = stack.Children[0].Child("mlp").Child("c_fc").Parameters.First(p => p.Name == "weight");
            Assert.Equal("[Hidden=16, Inner=40]", "[" + string.Join(", ", cFc.Shape) + "]");
        }
    }
}
