using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using ModelDsl.Checkpoints;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>
    /// Safetensors checkpoints of the generated T5 models: exact round trips, Hugging Face's T5ForConditionalGeneration
    /// names and shapes, and the copies of the shared embedding some files carry (encoder.embed_tokens.weight,
    /// decoder.embed_tokens.weight and, for a tied head, lm_head.weight), which load when they equal shared.weight and
    /// fail, naming both tensors and leaving the model unchanged, when they do not.
    /// </summary>
    public sealed class T5CheckpointTests : IDisposable
    {
        private readonly string folder = Directory.CreateTempSubdirectory("modeldsl-t5-checkpoints-").FullName;
        private readonly ITestOutputHelper log;

        public T5CheckpointTests(ITestOutputHelper log) => this.log = log;

        public void Dispose() => Directory.Delete(folder, recursive: true);

        /// <summary>
        /// T5ForConditionalGeneration's tensors as Hugging Face names them, written from its modules: T5Stack "encoder" and
        /// "decoder" of T5Block "block.{i}", whose "layer" list holds T5LayerSelfAttention (0), in the decoder
        /// T5LayerCrossAttention (1), and T5LayerFF (last); T5Attention's q, k, v, o are nn.Linear without bias
        /// ([out, in], inner width Heads x d_kv) and only block 0 has relative_attention_bias [Buckets, Heads]; the
        /// feed-forward is wi, wo (T5DenseActDense) or wi_0, wi_1, wo (T5DenseGatedActDense); T5LayerNorm has only a weight.
        /// </summary>
        private static Dictionary<string, long[]> HuggingFaceT5Names(int vocab, int hidden, int heads, int headDim, int inner, int buckets,
            int encoderLayers, int decoderLayers, bool gated, bool tied)
        {
            long width = heads * headDim;
            var names = new Dictionary<string, long[]> { ["shared.weight"] = new long[] { vocab, hidden } };
            void Attention(string at)
            {
                foreach (var projection in new[] { "q", "k", "v" }) names[$"{at}.{projection}.weight"] = new[] { width, hidden };
                names[at + ".o.weight"] = new[] { hidden, width };
            }
            void FeedForward(string at)
            {
                if (gated)
                {
                    names[at + ".DenseReluDense.wi_0.weight"] = new long[] { inner, hidden };
                    names[at + ".DenseReluDense.wi_1.weight"] = new long[] { inner, hidden };
                }
                else names[at + ".DenseReluDense.wi.weight"] = new long[] { inner, hidden };
                names[at + ".DenseReluDense.wo.weight"] = new long[] { hidden, inner };
                names[at + ".layer_norm.weight"] = new long[] { hidden };
            }
            foreach (var (stack, layers) in new[] { ("encoder", encoderLayers), ("decoder", decoderLayers) })
            {
                names[$"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = new long[] { buckets, heads };
                for (int i = 0; i < layers; i++)
                {
                    string block = $"{stack}.block.{i}.layer.";
                    Attention(block + "0.SelfAttention");
                    names[block + "0.layer_norm.weight"] = new long[] { hidden };
                    if (stack == "decoder")
                    {
                        Attention(block + "1.EncDecAttention");
                        names[block + "1.layer_norm.weight"] = new long[] { hidden };
                    }
                    FeedForward(block + (stack == "decoder" ? "2" : "1"));
                }
                names[stack + ".final_layer_norm.weight"] = new long[] { hidden };
            }
            if (!tied) names["lm_head.weight"] = new long[] { vocab, hidden };
            return names;
        }

        private static SequenceToSequenceModel Randomized(string kind, ulong seed)
        {
            var (model, _) = T5NumericsTests.Create(kind);
            T5NumericsTests.Randomize(model, seed);
            model.eval();
            return model;
        }

        private static Tensor Logits(SequenceToSequenceModel model)
        {
            using var noGrad = torch.no_grad();
            var (source, mask) = T5NumericsTests.PaddedSource(7);
            return model.Forward(source, Numerics.RandomIds(3, 16, 50, 8), mask).Logits;
        }

        private string SavedFile(SequenceToSequenceModel model, string name)
        {
            string path = Path.Combine(folder, name);
            model.SaveSafetensors(path);
            return path;
        }

        private string Rewritten(string path, string name, Action<Dictionary<string, Tensor>> change)
        {
            var tensors = Safetensors.Load(path);
            change(tensors);
            string rewritten = Path.Combine(folder, name);
            Safetensors.Save(rewritten, tensors);
            return rewritten;
        }

        [Theory]
        [InlineData(nameof(TinyT5))]
        [InlineData(nameof(TinyTiedT5))]
        public void Save_then_load_into_a_fresh_model_gives_identical_parameters_and_logits(string kind)
        {
            using var scope = torch.NewDisposeScope();
            var model = Randomized(kind, 501);
            string path = SavedFile(model, kind + ".safetensors");
            var (fresh, _) = T5NumericsTests.Create(kind);
            fresh.eval();
            Assert.False(Numerics.Identical(Logits(model), Logits(fresh)));

            fresh.LoadSafetensors(path);
            foreach (var (name, p) in fresh.named_parameters())
                Assert.True(Numerics.Identical(p, model.get_parameter(name)!), name);
            Assert.True(Numerics.Identical(Logits(model), Logits(fresh)), "logits after a round trip must be bitwise identical");
        }

        [Fact]
        public void Saved_names_and_shapes_are_exactly_Hugging_Face_T5s()
        {
            using var scope = torch.NewDisposeScope();
            foreach (var (kind, expected) in new[]
            {
                (nameof(TinyT5), HuggingFaceT5Names(50, 32, 4, 16, 64, 8, 2, 2, gated: true, tied: false)),
                (nameof(TinyTiedT5), HuggingFaceT5Names(50, 32, 4, 8, 64, 8, 1, 2, gated: false, tied: true)),
            })
            {
                var model = Randomized(kind, 511);
                var header = SafetensorsFile.ReadHeader(SavedFile(model, kind + "-names.safetensors"));
                Assert.Equal(expected.Keys.OrderBy(k => k, StringComparer.Ordinal), header.Tensors.Keys.OrderBy(k => k, StringComparer.Ordinal));
                foreach (var (name, shape) in expected)
                {
                    Assert.Equal(shape, header.Tensors[name].Shape);
                    Assert.Equal("F32", header.Tensors[name].DType);
                }
                long count = expected.Values.Sum(s => s.Aggregate(1L, (a, b) => a * b));
                log.WriteLine($"{kind}: {expected.Count} tensors, {count:N0} parameters (card: {model.Card.ParameterCount:N0})");
                Assert.Equal(count, model.Card.ParameterCount);
            }
            // By hand for TinyT5: shared 50x32 + lm_head 50x32; per encoder layer q,k,v,o 4x64x32 + wi_0,wi_1,wo 3x64x32 + 2 norms
            // x 32; per decoder layer twice the attention + the feed-forward + 3 norms; two bias tables 8x4 and two final norms.
            Assert.Equal(2 * 1600 + 2 * (7 * 2048 + 64) + 2 * (11 * 2048 + 96) + 2 * 32 + 2 * 32, TinyT5.Card.ParameterCount);
        }

        /// <summary>Hugging Face's T5 modules hold encoder.embed_tokens and decoder.embed_tokens as the shared embedding itself; files may store them.</summary>
        [Theory]
        [InlineData(nameof(TinyT5))]
        [InlineData(nameof(TinyTiedT5))]
        public void Copies_of_the_shared_embedding_load_when_equal(string kind)
        {
            using var scope = torch.NewDisposeScope();
            var model = Randomized(kind, 521);
            string path = Rewritten(SavedFile(model, kind + "-plain.safetensors"), kind + "-copies.safetensors", tensors =>
            {
                tensors["encoder.embed_tokens.weight"] = tensors["shared.weight"].clone();
                tensors["decoder.embed_tokens.weight"] = tensors["shared.weight"].clone();
                if (kind == nameof(TinyTiedT5)) tensors["lm_head.weight"] = tensors["shared.weight"].clone(); // a tied head's copy
            });
            var (fresh, _) = T5NumericsTests.Create(kind);
            fresh.eval();
            fresh.LoadSafetensors(path);
            Assert.True(Numerics.Identical(Logits(model), Logits(fresh)));
        }

        [Theory]
        [InlineData(nameof(TinyT5), "encoder.embed_tokens.weight")]
        [InlineData(nameof(TinyT5), "decoder.embed_tokens.weight")]
        [InlineData(nameof(TinyTiedT5), "lm_head.weight")]
        public void A_copy_that_differs_from_the_shared_embedding_is_rejected_naming_both_and_nothing_is_loaded(string kind, string copy)
        {
            using var scope = torch.NewDisposeScope();
            var source = Randomized(kind, 531);
            string path = Rewritten(SavedFile(source, kind + "-source.safetensors"), kind + "-untied.safetensors", tensors =>
            {
                tensors["encoder.embed_tokens.weight"] = tensors["shared.weight"].clone();
                tensors["decoder.embed_tokens.weight"] = tensors["shared.weight"].clone();
                var different = tensors["shared.weight"].clone();
                different[7, 3] = different[7, 3] + 0.5f;
                tensors[copy] = different;
            });
            var target = Randomized(kind, 532);
            var before = Logits(target);
            var e = Assert.Throws<SafetensorsException>(() => target.LoadSafetensors(path));
            log.WriteLine(e.Message);
            Assert.Contains($"Model '{kind}'", e.Message);
            Assert.Contains($"tensor '{copy}'", e.Message);
            Assert.Contains("'shared.weight'", e.Message);
            Assert.Contains("[7, 3]", e.Message);
            // TinyT5 has no [TiedEmbeddings]: its embed_tokens are tied by T5's architecture, and the message must not say otherwise.
            Assert.Contains("one parameter for both", e.Message);
            Assert.Equal(copy, e.TensorName);
            Assert.True(Numerics.Identical(before, Logits(target)), "a failed load must leave the model unchanged");
        }

        [Fact]
        public void Untied_file_without_lm_head_or_with_a_wrong_shape_is_named()
        {
            using var scope = torch.NewDisposeScope();
            string path = SavedFile(Randomized(nameof(TinyT5), 541), "full.safetensors");
            var missing = Rewritten(path, "no-head.safetensors", tensors => tensors.Remove("lm_head.weight"));
            var e = Assert.Throws<SafetensorsException>(() => T5NumericsTests.Create(nameof(TinyT5)).Model.LoadSafetensors(missing));
            log.WriteLine(e.Message);
            Assert.Contains("'lm_head.weight'", e.Message);
            Assert.Contains("missing", e.Message);

            // A d_kv of 8 instead of 16: the query projection is [32, 32], not [64, 32].
            var narrow = Rewritten(path, "narrow.safetensors", tensors => tensors["decoder.block.1.layer.1.EncDecAttention.q.weight"] = torch.zeros(32, 32));
            e = Assert.Throws<SafetensorsException>(() => T5NumericsTests.Create(nameof(TinyT5)).Model.LoadSafetensors(narrow));
            log.WriteLine(e.Message);
            Assert.Contains("decoder.block.1.layer.1.EncDecAttention.q.weight", e.Message);
            Assert.Contains("dimension 0: 32 vs 64", e.Message);
        }
    }
}
