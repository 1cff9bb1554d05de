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
    /// BERT checkpoints: the exact names and shapes of Hugging Face's BertForMaskedLM and BertForSequenceClassification
    /// files, exact round trips, the files real BERT releases are (BertForPreTraining with its pooler, next-sentence head,
    /// position_ids buffer and tied decoder copies; BertModel without the "bert." prefix; TensorFlow-era LayerNorm
    /// gamma/beta names), and <see cref="TransformerModel.LoadPretrained"/>: an MLM checkpoint into a classifier.
    /// </summary>
    public sealed class BertCheckpointTests : IDisposable
    {
        private const int Vocab = TinyBert.TorchSharpModel.Vocab, Context = TinyBert.TorchSharpModel.Context;
        private const int Hidden = TinyBert.TorchSharpModel.Hidden, Inner = TinyBert.TorchSharpModel.Inner;
        private const int Classes = TinyBertClassifier.TorchSharpModel.Classes;

        private readonly string folder = Directory.CreateTempSubdirectory("modeldsl-bert-checkpoints-").FullName;
        private readonly ITestOutputHelper log;

        public BertCheckpointTests(ITestOutputHelper log) => this.log = log;

        public void Dispose() => Directory.Delete(folder, recursive: true);

        /// <summary>BertModel's tensors under "bert." as Hugging Face saves them (position_ids is a non-persistent buffer).</summary>
        private static Dictionary<string, long[]> HuggingFaceEncoderNames(int layers)
        {
            var names = new Dictionary<string, long[]>
            {
                ["bert.embeddings.word_embeddings.weight"] = new long[] { Vocab, Hidden },
                ["bert.embeddings.position_embeddings.weight"] = new long[] { Context, Hidden },
                ["bert.embeddings.token_type_embeddings.weight"] = new long[] { 2, Hidden },
                ["bert.embeddings.LayerNorm.weight"] = new long[] { Hidden },
                ["bert.embeddings.LayerNorm.bias"] = new long[] { Hidden },
            };
            for (int i = 0; i < layers; i++)
            {
                string l = $"bert.encoder.layer.{i}.";
                foreach (var projection in new[] { "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense" })
                {
                    names[l + projection + ".weight"] = new long[] { Hidden, Hidden }; // nn.Linear: [out, in]
                    names[l + projection + ".bias"] = new long[] { Hidden };
                }
                names[l + "attention.output.LayerNorm.weight"] = new long[] { Hidden };
                names[l + "attention.output.LayerNorm.bias"] = new long[] { Hidden };
                names[l + "intermediate.dense.weight"] = new long[] { Inner, Hidden };
                names[l + "intermediate.dense.bias"] = new long[] { Inner };
                names[l + "output.dense.weight"] = new long[] { Hidden, Inner };
                names[l + "output.dense.bias"] = new long[] { Hidden };
                names[l + "output.LayerNorm.weight"] = new long[] { Hidden };
                names[l + "output.LayerNorm.bias"] = new long[] { Hidden };
            }
            return names;
        }

        /// <summary>BertForMaskedLM.save_pretrained: no pooler; the tied decoder weight and bias are saved once, as the embedding and cls.predictions.bias.</summary>
        private static Dictionary<string, long[]> HuggingFaceMaskedLmNames()
        {
            var names = HuggingFaceEncoderNames(2);
            names["cls.predictions.bias"] = new long[] { Vocab };
            names["cls.predictions.transform.dense.weight"] = new long[] { Hidden, Hidden };
            names["cls.predictions.transform.dense.bias"] = new long[] { Hidden };
            names["cls.predictions.transform.LayerNorm.weight"] = new long[] { Hidden };
            names["cls.predictions.transform.LayerNorm.bias"] = new long[] { Hidden };
            return names;
        }

        private static Dictionary<string, long[]> HuggingFaceClassifierNames()
        {
            var names = HuggingFaceEncoderNames(2);
            names["bert.pooler.dense.weight"] = new long[] { Hidden, Hidden };
            names["bert.pooler.dense.bias"] = new long[] { Hidden };
            names["classifier.weight"] = new long[] { Classes, Hidden };
            names["classifier.bias"] = new long[] { Classes };
            return names;
        }

        private static T Randomized<T>(T model, ulong seed) where T : TransformerModel
        {
            Numerics.Randomize(model, seed);
            model.eval();
            return model;
        }

        private static Tensor Logits(TransformerModel model)
        {
            using var noGrad = torch.no_grad();
            var ids = Numerics.RandomIds(2, 12, Vocab, 7);
            var segments = Numerics.RandomIds(2, 12, 2, 8);
            var mask = torch.arange(12).unsqueeze(0).lt(torch.tensor(new long[] { 12, 9 }).unsqueeze(1));
            return model switch
            {
                MaskedLanguageModel m => m.Forward(ids, segments, mask).Logits,
                SequenceClassificationModel c => c.Forward(ids, segments, mask).Logits,
                _ => throw new ArgumentException(model.GetType().Name),
            };
        }

        private string Saved(TransformerModel model, string name)
        {
            string path = Path.Combine(folder, name);
            model.SaveSafetensors(path);
            return path;
        }

        private string Written(string name, Dictionary<string, Tensor> tensors)
        {
            string path = Path.Combine(folder, name);
            Safetensors.Save(path, tensors);
            return path;
        }

        private static Dictionary<string, byte[]> Snapshot(nn.Module model)
            => model.named_parameters().ToDictionary(p => p.name, p => p.parameter.contiguous().bytes.ToArray());

        private static void AssertNamesAndShapes(Dictionary<string, long[]> expected, string path)
        {
            var header = SafetensorsFile.ReadHeader(path);
            Assert.Equal(expected.Keys.OrderBy(k => k, StringComparer.Ordinal), header.Tensors.Keys.OrderBy(k => k, StringComparer.Ordinal));
            foreach (var (name, shape) in expected)
            {
                Assert.True(shape.SequenceEqual(header.Tensors[name].Shape), $"{name}: [{string.Join(", ", header.Tensors[name].Shape)}]");
                Assert.Equal("F32", header.Tensors[name].DType);
            }
        }

        // ------------------------------------------------------------------------------------------------------
        // Names, shapes, round trips
        // ------------------------------------------------------------------------------------------------------

        [Fact]
        public void Masked_language_model_saves_exactly_the_BertForMaskedLM_names_and_shapes_and_round_trips()
        {
            using var scope = torch.NewDisposeScope();
            var model = Randomized(TinyBert.CreateTorchSharp(), 401);
            string path = Saved(model, "mlm.safetensors");
            AssertNamesAndShapes(HuggingFaceMaskedLmNames(), path);

            var fresh = TinyBert.CreateTorchSharp();
            fresh.eval();
            Assert.False(Numerics.Identical(Logits(model), Logits(fresh)));
            fresh.LoadSafetensors(path);
            Assert.True(Numerics.Identical(Logits(model), Logits(fresh)), "MLM logits after a round trip must be bitwise identical");
        }

        [Fact]
        public void Classifier_saves_exactly_the_BertForSequenceClassification_names_and_shapes_and_round_trips()
        {
            using var scope = torch.NewDisposeScope();
            var model = Randomized(TinyBertClassifier.CreateTorchSharp(), 411);
            string path = Saved(model, "classifier.safetensors");
            AssertNamesAndShapes(HuggingFaceClassifierNames(), path);

            var fresh = TinyBertClassifier.CreateTorchSharp();
            fresh.eval();
            fresh.LoadSafetensors(path);
            Assert.True(Numerics.Identical(Logits(model), Logits(fresh)), "class logits after a round trip must be bitwise identical");
        }

        /// <summary>
        /// A released BERT checkpoint is a BertForPreTraining file: besides BertForMaskedLM's tensors it has the pooler and
        /// the next-sentence head (cls.seq_relationship), older exports the position_ids buffer and the tied decoder's
        /// weight and bias as copies. The masked language model loads it strictly, skipping what BertForMaskedLM skips.
        /// </summary>
        [Fact]
        public void BertForPreTraining_file_with_its_extras_loads_strictly_into_the_masked_language_model()
        {
            using var scope = torch.NewDisposeScope();
            var model = Randomized(TinyBert.CreateTorchSharp(), 421);
            var tensors = Safetensors.Load(Saved(model, "mlm.safetensors"));
            AddPreTrainingExtras(tensors);
            string path = Written("pretraining.safetensors", tensors);

            var fresh = TinyBert.CreateTorchSharp();
            fresh.eval();
            fresh.LoadSafetensors(path);
            Assert.True(Numerics.Identical(Logits(model), Logits(fresh)));
        }

        private static void AddPreTrainingExtras(Dictionary<string, Tensor> tensors)
        {
            tensors["bert.embeddings.position_ids"] = torch.arange(Context, dtype: ScalarType.Int64).unsqueeze(0);
            tensors["bert.pooler.dense.weight"] = torch.randn(Hidden, Hidden);
            tensors["bert.pooler.dense.bias"] = torch.randn(Hidden);
            tensors["cls.seq_relationship.weight"] = torch.randn(2, Hidden);
            tensors["cls.seq_relationship.bias"] = torch.randn(2);
            tensors["cls.predictions.decoder.weight"] = tensors["bert.embeddings.word_embeddings.weight"].clone();
            tensors["cls.predictions.decoder.bias"] = tensors["cls.predictions.bias"].clone();
        }

        [Theory]
        [InlineData("cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight")]
        [InlineData("cls.predictions.decoder.bias", "cls.predictions.bias")]
        public void Decoder_copy_that_differs_from_its_tied_parameter_is_rejected_and_nothing_loads(string copy, string tiedTo)
        {
            using var scope = torch.NewDisposeScope();
            var tensors = Safetensors.Load(Saved(Randomized(TinyBert.CreateTorchSharp(), 431), "mlm.safetensors"));
            tensors[copy] = tensors[tiedTo].clone();
            tensors[copy].view(-1)[5] = torch.tensor(0.125f);
            string path = Written("untied.safetensors", tensors);

            var target = Randomized(TinyBert.CreateTorchSharp(), 432);
            var before = Snapshot(target);
            var e = Assert.Throws<SafetensorsException>(() => target.LoadSafetensors(path));
            log.WriteLine(e.Message);
            Assert.Contains("Model 'TinyBert'", e.Message);
            Assert.Contains($"tensor '{copy}' in untied.safetensors differs from tensor '{tiedTo}'", e.Message);
            Assert.Equal(copy, e.TensorName);
            Assert.Equal(before, Snapshot(target));
        }

        /// <summary>Google's original BERT releases (bert-base-uncased, ...) name LayerNorm tensors "gamma" and "beta".</summary>
        [Fact]
        public void TensorFlow_era_LayerNorm_gamma_and_beta_names_load()
        {
            using var scope = torch.NewDisposeScope();
            var model = Randomized(TinyBert.CreateTorchSharp(), 441);
            var tensors = Safetensors.Load(Saved(model, "mlm.safetensors"));
            var legacy = tensors.ToDictionary(
                kv => kv.Key.Replace("LayerNorm.weight", "LayerNorm.gamma", StringComparison.Ordinal).Replace("LayerNorm.bias", "LayerNorm.beta", StringComparison.Ordinal),
                kv => kv.Value);
            Assert.Equal(2 + 2 * 4 + 2, legacy.Keys.Count(k => k.EndsWith(".gamma", StringComparison.Ordinal) || k.EndsWith(".beta", StringComparison.Ordinal)));
            string path = Written("legacy.safetensors", legacy);

            var fresh = TinyBert.CreateTorchSharp();
            fresh.eval();
            fresh.LoadSafetensors(path);
            Assert.True(Numerics.Identical(Logits(model), Logits(fresh)));
        }

        [Fact]
        public void Strict_load_of_a_masked_LM_checkpoint_into_a_classifier_names_what_is_missing_and_unexpected()
        {
            using var scope = torch.NewDisposeScope();
            string path = Saved(Randomized(TinyBert.CreateTorchSharp(), 451), "mlm.safetensors");
            var classifier = Randomized(TinyBertClassifier.CreateTorchSharp(), 452);
            var before = Snapshot(classifier);
            var e = Assert.Throws<SafetensorsException>(() => classifier.LoadSafetensors(path));
            log.WriteLine(e.Message);
            Assert.Contains("Model 'TinyBertClassifier': 4 parameters are missing from mlm.safetensors: 'bert.pooler.dense.weight', 'bert.pooler.dense.bias', 'classifier.weight', 'classifier.bias'", e.Message);
            Assert.Contains("5 tensor(s) in mlm.safetensors match no parameter of the model", e.Message);
            Assert.Contains("'cls.predictions.transform.dense.weight'", e.Message);
            Assert.Equal(before, Snapshot(classifier));
        }

        // ------------------------------------------------------------------------------------------------------
        // LoadPretrained: a checkpoint with another head
        // ------------------------------------------------------------------------------------------------------

        [Fact]
        public void Masked_LM_checkpoint_loads_the_encoder_of_a_classifier_and_leaves_the_new_head_initialised()
        {
            using var scope = torch.NewDisposeScope();
            var mlm = Randomized(TinyBert.CreateTorchSharp(), 461);
            string path = Saved(mlm, "mlm.safetensors");
            var classifier = TinyBertClassifier.CreateTorchSharp();
            var initialised = Snapshot(classifier);

            var load = classifier.LoadPretrained(path);
            log.WriteLine(load.ToString());

            var encoder = HuggingFaceEncoderNames(2).Keys.ToHashSet();
            Assert.Equal(encoder.OrderBy(n => n, StringComparer.Ordinal), load.Loaded.OrderBy(n => n, StringComparer.Ordinal));
            Assert.Equal(new[] { "bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias" }, load.Missing);
            Assert.Equal(new[] { "cls.predictions.bias", "cls.predictions.transform.LayerNorm.bias", "cls.predictions.transform.LayerNorm.weight",
                                 "cls.predictions.transform.dense.bias", "cls.predictions.transform.dense.weight" },
                         load.Unused.OrderBy(n => n, StringComparer.Ordinal));
            Assert.StartsWith("loaded 37 tensor(s); 4 not in the file keep their initialisation: 'bert.pooler.dense.weight'", load.ToString());

            var now = Snapshot(classifier);
            var source = Snapshot(mlm);
            foreach (var name in encoder) Assert.True(source[name].SequenceEqual(now[name]), $"{name} was not loaded");
            foreach (var name in load.Missing) Assert.True(initialised[name].SequenceEqual(now[name]), $"{name} changed");
        }

        /// <summary>
        /// Hugging Face's own "bert-base-uncased" model.safetensors is mostly a BertModel: names without "bert.", a pooler.
        /// Into a classifier it fills the encoder and the pooler; into a masked language model the encoder (the pooler is
        /// skipped as BertForMaskedLM skips it), leaving the heads initialised.
        /// </summary>
        [Fact]
        public void BertModel_file_without_the_prefix_loads_into_the_encoder_part()
        {
            using var scope = torch.NewDisposeScope();
            var source = Randomized(TinyBertClassifier.CreateTorchSharp(), 471);
            var tensors = Safetensors.Load(Saved(source, "classifier.safetensors"))
                .Where(kv => kv.Key.StartsWith("bert.", StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key.Substring("bert.".Length), kv => kv.Value);
            tensors["embeddings.position_ids"] = torch.arange(Context, dtype: ScalarType.Int64).unsqueeze(0);
            string path = Written("bertmodel.safetensors", tensors);

            var classifier = TinyBertClassifier.CreateTorchSharp();
            var load = classifier.LoadPretrained(path);
            log.WriteLine("classifier: " + load);
            Assert.Equal(HuggingFaceEncoderNames(2).Count + 2, load.Loaded.Count);
            Assert.Equal(new[] { "classifier.weight", "classifier.bias" }, load.Missing);
            Assert.Empty(load.Unused);
            var loaded = Snapshot(classifier);
            var expected = Snapshot(source);
            foreach (var name in load.Loaded) Assert.True(expected[name].SequenceEqual(loaded[name]), name);

            var mlm = TinyBert.CreateTorchSharp();
            load = mlm.LoadPretrained(path);
            log.WriteLine("MLM: " + load);
            Assert.Equal(HuggingFaceEncoderNames(2).Keys.OrderBy(n => n, StringComparer.Ordinal), load.Loaded.OrderBy(n => n, StringComparer.Ordinal));
            Assert.Equal(new[] { "cls.predictions.bias", "cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
                                 "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias" }.OrderBy(n => n, StringComparer.Ordinal),
                         load.Missing.OrderBy(n => n, StringComparer.Ordinal));
            Assert.Empty(load.Unused);
        }

        [Fact]
        public void Pretrained_load_refuses_a_matching_name_with_another_shape_and_loads_nothing()
        {
            using var scope = torch.NewDisposeScope();
            var tensors = Safetensors.Load(Saved(Randomized(TinyBert.CreateTorchSharp(), 481), "mlm.safetensors"));
            tensors["bert.embeddings.word_embeddings.weight"] = torch.zeros(Vocab + 10, Hidden); // another tokenizer's vocabulary
            string path = Written("other-vocab.safetensors", tensors);

            var classifier = Randomized(TinyBertClassifier.CreateTorchSharp(), 482);
            var before = Snapshot(classifier);
            var e = Assert.Throws<SafetensorsException>(() => classifier.LoadPretrained(path));
            log.WriteLine(e.Message);
            Assert.Contains("Model 'TinyBertClassifier': tensor 'bert.embeddings.word_embeddings.weight' in other-vocab.safetensors has shape [60, 32]; the model expects [50, 32] (dimension 0: 60 vs 50)", e.Message);
            Assert.Equal("bert.embeddings.word_embeddings.weight", e.TensorName);
            Assert.Equal(before, Snapshot(classifier));
        }

        [Fact]
        public void Pretrained_load_of_a_file_that_matches_nothing_fails()
        {
            using var scope = torch.NewDisposeScope();
            var gpt = TinyGpt.CreateTorchSharp();
            string path = Saved(gpt, "gpt.safetensors");
            var classifier = TinyBertClassifier.CreateTorchSharp();
            var before = Snapshot(classifier);
            var e = Assert.Throws<SafetensorsException>(() => classifier.LoadPretrained(path));
            log.WriteLine(e.Message);
            Assert.Contains("Model 'TinyBertClassifier': no tensor in gpt.safetensors matches a parameter of the model, so nothing would be loaded", e.Message);
            Assert.Contains("'transformer.", e.Message);
            Assert.Equal(before, Snapshot(classifier));
        }

        [Fact]
        public void Card_parameter_counts_equal_the_module_parameters()
        {
            // Encoder: V*E + C*E + 2E + 2E [segments, embedding norm] + L * (4 (E*E + E) + 2E + E*I + I + I*E + E + 2E)
            const long encoder = Vocab * Hidden + Context * Hidden + 2 * Hidden + 2 * Hidden
                                 + 2 * (4 * (Hidden * Hidden + Hidden) + 2 * Hidden + Hidden * Inner + Inner + Inner * Hidden + Hidden + 2 * Hidden);
            var mlm = TinyBert.CreateTorchSharp();
            var classifier = TinyBertClassifier.CreateTorchSharp();
            Assert.Equal(encoder + Hidden * Hidden + Hidden + 2 * Hidden + Vocab, mlm.parameters().Sum(p => p.numel())); // transform, its norm, decoder bias
            Assert.Equal(mlm.parameters().Sum(p => p.numel()), mlm.Card.ParameterCount);
            Assert.Equal(encoder + Hidden * Hidden + Hidden + Classes * Hidden + Classes, classifier.parameters().Sum(p => p.numel()));
            Assert.Equal(classifier.parameters().Sum(p => p.numel()), classifier.Card.ParameterCount);
        }
    }
}
