using System.Threading.Tasks;
using ModelDsl.Analyzers.CodeFixes;
using ModelDsl.Analyzers.Tests.Infrastructure;
using Xunit;

namespace ModelDsl.Analyzers.Tests
{
    /// <summary>Each code fix applied in an AdhocWorkspace: the exact resulting text, and the diagnostic gone.</summary>
    public sealed class CodeFixTests
    {
        private const string Head = "using ModelDsl;\n\n";

        [Fact]
        public async Task MDSL0001_offers_the_nearest_head_counts_below_and_above()
        {
            var source = Head + "[Decoder(Vocab = 100, Context = 64, Hidden = 770, Heads = 12, Layers = 2)]\npublic partial record M;\n";
            Assert.Equal(new[] { "Use Heads = 11", "Use Heads = 14" }, await CodeFixVerifier.OfferedAsync(source, new UseDivisorCodeFixProvider()));
            await CodeFixVerifier.VerifyAsync(source, new UseDivisorCodeFixProvider(), "Use Heads = 14",
                Head + "[Decoder(Vocab = 100, Context = 64, Hidden = 770, Heads = 14, Layers = 2)]\npublic partial record M;\n");
            await CodeFixVerifier.VerifyAsync(source, new UseDivisorCodeFixProvider(), "Use Heads = 11",
                Head + "[Decoder(Vocab = 100, Context = 64, Hidden = 770, Heads = 11, Layers = 2)]\npublic partial record M;\n");
        }

        [Fact]
        public async Task MDSL0001_offers_only_the_divisor_below_when_heads_exceeds_hidden()
        {
            var source = Head + "[Decoder(Vocab = 100, Context = 64, Hidden = 12, Heads = 16, Layers = 2)]\npublic partial record M;\n";
            Assert.Equal(new[] { "Use Heads = 12" }, await CodeFixVerifier.OfferedAsync(source, new UseDivisorCodeFixProvider()));
        }

        [Fact]
        public async Task MDSL0001_replaces_a_constant_expression_with_the_literal()
        {
            var source = Head + "static class K { public const int H = 12; }\n[Decoder(Vocab = 100, Context = 64, Hidden = 770, Heads = K.H, Layers = 2)]\npublic partial record M;\n";
            await CodeFixVerifier.VerifyAsync(source, new UseDivisorCodeFixProvider(), "Use Heads = 14",
                Head + "static class K { public const int H = 12; }\n[Decoder(Vocab = 100, Context = 64, Hidden = 770, Heads = 14, Layers = 2)]\npublic partial record M;\n");
        }

        [Fact]
        public async Task MDSL0003_offers_the_nearest_divisors_of_heads_for_kv_heads()
        {
            var source = Head + "[Decoder(Vocab = 100, Context = 64, Hidden = 96, Heads = 12, Layers = 2)]\n[Attention(KvHeads = 5)]\npublic partial record M;\n";
            Assert.Equal(new[] { "Use KvHeads = 4", "Use KvHeads = 6" }, await CodeFixVerifier.OfferedAsync(source, new UseDivisorCodeFixProvider()));
            await CodeFixVerifier.VerifyAsync(source, new UseDivisorCodeFixProvider(), "Use KvHeads = 4",
                Head + "[Decoder(Vocab = 100, Context = 64, Hidden = 96, Heads = 12, Layers = 2)]\n[Attention(KvHeads = 4)]\npublic partial record M;\n");
        }

        [Fact]
        public async Task MDSL0007_offers_the_nearest_patch_sizes()
        {
            var source = Head + "[VisionEncoder(ImageSize = 224, PatchSize = 15, Channels = 3, Hidden = 64, Heads = 4, Layers = 2, Classes = 10)]\npublic partial record V;\n";
            Assert.Equal(new[] { "Use PatchSize = 14", "Use PatchSize = 16" }, await CodeFixVerifier.OfferedAsync(source, new UseDivisorCodeFixProvider()));
            await CodeFixVerifier.VerifyAsync(source, new UseDivisorCodeFixProvider(), "Use PatchSize = 16",
                Head + "[VisionEncoder(ImageSize = 224, PatchSize = 16, Channels = 3, Hidden = 64, Heads = 4, Layers = 2, Classes = 10)]\npublic partial record V;\n");
        }

        [Fact]
        public Task MDSL0017_adds_partial_after_the_other_modifiers() => CodeFixVerifier.VerifyAsync(
            Head + "[Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]\npublic sealed record M;\n",
            new MakePartialCodeFixProvider(), "Make 'M' partial",
            Head + "[Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]\npublic sealed partial record M;\n");

        [Fact]
        public Task MDSL0017_adds_partial_to_a_type_without_modifiers_keeping_its_indentation() => CodeFixVerifier.VerifyAsync(
            Head + "namespace N\n{\n    [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]\n    record M;\n}\n",
            new MakePartialCodeFixProvider(), "Make 'M' partial",
            Head + "namespace N\n{\n    [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]\n    partial record M;\n}\n");

        [Fact]
        public Task MDSL0017_adds_partial_to_the_containing_types_too() => CodeFixVerifier.VerifyAsync(
            Head + "public static class Outer\n{\n    class Inner\n    {\n        [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]\n        public partial record M;\n    }\n}\n",
            new MakePartialCodeFixProvider(), "Make 'M' and its containing types partial",
            Head + "public static partial class Outer\n{\n    partial class Inner\n    {\n        [Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]\n        public partial record M;\n    }\n}\n");

        [Fact]
        public async Task MDSL0017_offers_nothing_for_a_generic_type()
        {
            var source = Head + "[Decoder(Vocab = 100, Context = 64, Hidden = 128, Heads = 4, Layers = 2)]\npublic record M<T>;\n";
            Assert.Empty(await CodeFixVerifier.OfferedAsync(source, new MakePartialCodeFixProvider()));
        }
    }
}
