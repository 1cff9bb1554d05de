using System;
using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using ModelDsl.Generators.Ir.Analysis;
using Xunit;

namespace ModelDsl.Generators.Tests
{
    /// <summary>The roofline estimate derived from the IR, and docs/roofline.md, which must show what it derives.</summary>
    public sealed class RooflineTests
    {
        private const string Gpt2Small = """
            [Decoder(Vocab = 50257, Context = 1024, Hidden = 768, Heads = 12, Layers = 12)]
            [FeedForward(Inner = 3072, Activation = Activation.GeluTanh)]
            [LearnedPositions, PreNorm, TiedEmbeddings]
            public partial record M;
            """;

        private const string KjvGpt = """
            [Decoder(Vocab = 64, Context = 128, Hidden = 128, Heads = 4, Layers = 4)]
            [FeedForward(Inner = 512, Activation = Activation.GeluTanh)]
            [LearnedPositions, PreNorm(Epsilon = 1e-5), TiedEmbeddings]
            public partial record M;
            """;

        [Fact]
        public void Matrix_products_cost_three_times_the_forward_flops_of_the_linear_layers()
        {
            var schedule = Schedule.Of(GraphTestSupport.Graph(Gpt2Small));
            var costs = Roofline.Of(schedule, batch: 8, time: 1024);
            double matmul = costs.Where(c => c.Kernel.StartsWith("Matmul", StringComparison.Ordinal)).Sum(c => c.Flops);
            // 6 x tokens x (weights of the linear layers, the tied head included): the familiar 6ND.
            double linearWeights = 12 * (768 * 3 * 768 + 768 * 768 + 2 * 768 * 3072) + 50257 * 768;
            // The MLP's up-projection applies GELU in its epilogue: 20 FLOPs an element of [Tokens, Inner] in 12 layers.
            double epilogue = 12 * 20.0 * 8 * 1024 * 3072;
            Assert.Equal(6 * 8 * 1024 * linearWeights + epilogue, matmul, 6);
            Assert.Equal(12, costs.Where(c => c.Kernel == "MatmulActivation (forward)").Sum(c => c.Launches));
            Assert.DoesNotContain(costs, c => c.Kernel == "Activation (forward)");
            Assert.Equal(2 * 12, costs.Where(c => c.Kernel == "Matmul (forward)" && c.Where.StartsWith("SelfAttention", StringComparison.Ordinal)).Sum(c => c.Launches));
        }

        [Fact]
        public void Causal_attention_counts_the_half_of_the_scores_it_computes()
        {
            var schedule = Schedule.Of(GraphTestSupport.Graph(KjvGpt));
            var attention = Roofline.Of(schedule, batch: 16, time: 128).Single(c => c.Kernel == "AttentionForward");
            Assert.Equal(4, attention.Launches);
            Assert.Equal(4 * (4.0 * 16 * 4 * 128 * 128 * 32 / 2), attention.Flops);
        }

        [Fact]
        public void Docs_roofline_shows_the_derived_tables()
        {
            string path = Path.Combine(Path.GetDirectoryName(ThisFile())!, "..", "..", "docs", "roofline.md");
            string text = File.ReadAllText(path).Replace("\r\n", "\n");
            string updated = text;
            foreach (var (name, source, batch, time) in new[] { ("KjvGpt", KjvGpt, 16, 128), ("Gpt2Small", Gpt2Small, 8, 1024) })
            {
                var table = Roofline.Table(Roofline.Of(Schedule.Of(GraphTestSupport.Graph(source)), batch, time), Machine.H100, (long)batch * time);
                updated = Regex.Replace(updated, $"(<!-- roofline:{name} -->\n).*?(<!-- /roofline -->)", m => m.Groups[1].Value + table + m.Groups[2].Value, RegexOptions.Singleline);
                Assert.Contains($"<!-- roofline:{name} -->", text);
            }
            if (updated != text && Environment.GetEnvironmentVariable(Snapshot.AcceptVariable) == "1") File.WriteAllText(path, updated);
            else Assert.True(updated == text, $"docs/roofline.md is out of date; run the generator tests with {Snapshot.AcceptVariable}=1 to rewrite its tables.");
        }

        private static string ThisFile([CallerFilePath] string path = "") => path;
    }
}
