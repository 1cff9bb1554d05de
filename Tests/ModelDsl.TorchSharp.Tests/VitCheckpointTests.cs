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
    /// Safetensors checkpoints of a generated ViT: exact round trips, Hugging Face ViTForImageClassification's names and
    /// shapes, and ViTModel files (the encoder alone: no "vit." prefix, a pooler, no classifier), which load into the
    /// encoder of a classifier whose head keeps its weights.
    /// </summary>
    public sealed class VitCheckpointTests : IDisposable
    {
        private readonly string folder = Directory.CreateTempSubdirectory("modeldsl-vit-checkpoints-").FullName;
        private readonly ITestOutputHelper log;
        private readonly OneTorchThread thread = new();

        public VitCheckpointTests(ITestOutputHelper log) => this.log = log;

        public void Dispose()
        {
            thread.Dispose();
            Directory.Delete(folder, recursive: true);
        }

        /// <summary>
        /// ViTForImageClassification's state dict for TinyVit (hidden 32, 16 x 16 greyscale images in 4 x 4 patches, 2 layers,
        /// inner 64, 10 classes), written out from transformers' modeling_vit.py: nn.Linear weights [out, in], the patch
        /// projection a Conv2d [Hidden, C, P, P], the class token [1, 1, H] and the position table [1, Patches + 1, H] bare.
        /// </summary>
        private static Dictionary<string, long[]> HuggingFaceVitNames()
        {
            const long H = 32, I = 64;
            var names = new Dictionary<string, long[]>
            {
                ["vit.embeddings.cls_token"] = new[] { 1L, 1, H },
                ["vit.embeddings.position_embeddings"] = new[] { 1L, 16 + 1, H },
                ["vit.embeddings.patch_embeddings.projection.weight"] = new[] { H, 1, 4, 4 },
                ["vit.embeddings.patch_embeddings.projection.bias"] = new[] { H },
                ["vit.layernorm.weight"] = new[] { H },
                ["vit.layernorm.bias"] = new[] { H },
                ["classifier.weight"] = new[] { 10L, H },
                ["classifier.bias"] = new[] { 10L },
            };
            for (int i = 0; i < 2; i++)
            {
                string l = $"vit.encoder.layer.{i}.";
                foreach (var norm in new[] { "layernorm_before", "layernorm_after" })
                {
                    names[l + norm + ".weight"] = new[] { H };
                    names[l + norm + ".bias"] = new[] { H };
                }
                foreach (var projection in new[] { "attention.attention.query", "attention.attention.key", "attention.attention.value", "attention.output.dense" })
                {
                    names[l + projection + ".weight"] = new[] { H, H };
                    names[l + projection + ".bias"] = new[] { H };
                }
                names[l + "intermediate.dense.weight"] = new[] { I, H };
                names[l + "intermediate.dense.bias"] = new[] { I };
                names[l + "output.dense.weight"] = new[] { H, I };
                names[l + "output.dense.bias"] = new[] { H };
            }
            return names;
        }

        private static TinyVit.TorchSharpModel Randomized(ulong seed)
        {
            var model = TinyVit.CreateTorchSharp();
            Numerics.Randomize(model, seed);
            model.eval();
            return model;
        }

        private static Tensor Logits(ImageClassificationModel model)
        {
            using var noGrad = torch.no_grad();
            return model.Forward(VitNumericsTests.RandomImages(3, VitNumericsTests.TinyVitArchitecture, ScalarType.Float32, 7)).Logits;
        }

        private string Saved(TransformerModel model, string name)
        {
            string path = Path.Combine(folder, name);
            model.SaveSafetensors(path);
            return path;
        }

        /// <summary>
        /// What Hugging Face's ViTModel.save_pretrained writes for the same encoder: the names without "vit.", no
        /// classifier, and the pooler (dense + tanh on the class token) that ViTForImageClassification does not have.
        /// </summary>
        private string VitModelFile(TransformerModel model, string name)
        {
            var tensors = Safetensors.Load(Saved(model, "for-" + name))
                .Where(kv => kv.Key.StartsWith("vit.", StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key["vit.".Length..], kv => kv.Value);
            tensors["pooler.dense.weight"] = torch.randn(32, 32);
            tensors["pooler.dense.bias"] = torch.randn(32);
            string path = Path.Combine(folder, name);
            Safetensors.Save(path, tensors);
            return path;
        }

        private static void AssertParametersEqual(TransformerModel expected, TransformerModel actual, Func<string, bool> which)
        {
            foreach (var (name, p) in actual.named_parameters().Where(n => which(n.name)))
                Assert.True(Numerics.Identical(p, expected.get_parameter(name)!), name);
        }

        [Fact]
        public void Save_then_load_into_a_fresh_model_gives_identical_logits()
        {
            using var scope = torch.NewDisposeScope();
            var model = Randomized(401);
            string path = Saved(model, "vit.safetensors");
            var fresh = TinyVit.CreateTorchSharp();
            fresh.eval();
            Assert.False(Numerics.Identical(Logits(model), Logits(fresh)));

            fresh.LoadSafetensors(path);
            Assert.True(Numerics.Identical(Logits(model), Logits(fresh)), "logits after a round trip must be bitwise identical");
            AssertParametersEqual(model, fresh, _ => true);
        }

        [Fact]
        public void Saves_exactly_the_Hugging_Face_ViTForImageClassification_names_and_shapes()
        {
            using var scope = torch.NewDisposeScope();
            var header = SafetensorsFile.ReadHeader(Saved(Randomized(411), "vit.safetensors"));
            var expected = HuggingFaceVitNames();
            Assert.Equal(expected.Keys.OrderBy(k => k, StringComparer.Ordinal), header.Tensors.Keys.OrderBy(k => k, StringComparer.Ordinal));
            foreach (var (name, shape) in expected)
            {
                Assert.Equal(shape, header.Tensors[name].Shape);
                Assert.Equal("F32", header.Tensors[name].DType);
            }
            Assert.Equal(TinyVit.Card.ParameterCount, expected.Values.Sum(s => s.Aggregate(1L, (n, d) => n * d)));
            Assert.Equal(18_602L, TinyVit.Card.ParameterCount);
        }

        /// <summary>
        /// A ViTModel file has no classifier, and the strict loader requires every parameter: LoadSafetensors refuses it,
        /// naming the two missing tensors, and changes nothing. The same file with the classifier's two tensors added
        /// loads as it is (the missing prefix is added, the pooler skipped).
        /// </summary>
        [Fact]
        public void ViTModel_file_needs_a_classifier_to_load_strictly()
        {
            using var scope = torch.NewDisposeScope();
            var source = Randomized(421);
            string path = VitModelFile(source, "vit-model.safetensors");

            var target = Randomized(422);
            var before = Logits(target);
            var e = Assert.Throws<SafetensorsException>(() => target.LoadSafetensors(path));
            log.WriteLine(e.Message);
            Assert.Contains("Model 'TinyVit': 2 parameters are missing from vit-model.safetensors: 'classifier.weight', 'classifier.bias'", e.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("pooler", e.Message, StringComparison.Ordinal);
            Assert.True(Numerics.Identical(before, Logits(target)), "a refused load changes nothing");

            var withClassifier = Safetensors.Load(path);
            withClassifier["classifier.weight"] = source.classifier.weight.detach().clone();
            withClassifier["classifier.bias"] = source.classifier.bias!.detach().clone();
            string completed = Path.Combine(folder, "vit-model-and-classifier.safetensors");
            Safetensors.Save(completed, withClassifier);
            target.LoadSafetensors(completed);
            Assert.True(Numerics.Identical(Logits(source), Logits(target)));
        }

        /// <summary>
        /// Fine-tuning starts from a base model: LoadBaseModelSafetensors fills the encoder from a ViTModel file and leaves
        /// the classifier as it was (here: a fresh model's initialisation), and says so.
        /// </summary>
        [Fact]
        public void ViTModel_file_loads_into_the_encoder_and_the_classifier_keeps_its_weights()
        {
            using var scope = torch.NewDisposeScope();
            var source = Randomized(431);
            string path = VitModelFile(source, "vit-model.safetensors");
            var target = TinyVit.CreateTorchSharp();
            target.eval();
            var classifier = target.classifier.weight.detach().clone();

            var kept = target.LoadBaseModelSafetensors(path);

            Assert.Equal(new[] { "classifier.weight", "classifier.bias" }, kept);
            AssertParametersEqual(source, target, name => name.StartsWith("vit.", StringComparison.Ordinal));
            Assert.True(Numerics.Identical(classifier, target.classifier.weight), "the classifier keeps its weights");
            using (torch.no_grad())
            {
                target.classifier.weight.copy_(source.classifier.weight);
                target.classifier.bias!.copy_(source.classifier.bias!);
            }
            Assert.True(Numerics.Identical(Logits(source), Logits(target)));
        }

        /// <summary>
        /// A classifier trained for another label set (ImageNet's 1000 classes; here 7) cannot load strictly, and the
        /// error names the tensor and the dimension; as a base model it loads, its head unread.
        /// </summary>
        [Fact]
        public void Checkpoint_of_another_label_set_loads_only_as_a_base_model()
        {
            using var scope = torch.NewDisposeScope();
            var source = Randomized(441);
            var tensors = Safetensors.Load(Saved(source, "ten-classes.safetensors"));
            tensors["classifier.weight"] = torch.randn(7, 32);
            tensors["classifier.bias"] = torch.randn(7);
            string path = Path.Combine(folder, "seven-classes.safetensors");
            Safetensors.Save(path, tensors);
            var target = TinyVit.CreateTorchSharp();

            var e = Assert.Throws<SafetensorsException>(() => target.LoadSafetensors(path));
            log.WriteLine(e.Message);
            Assert.Contains("tensor 'classifier.weight' in seven-classes.safetensors has shape [7, 32]; the model expects [10, 32] (dimension 0: 7 vs 10)", e.Message, StringComparison.Ordinal);

            Assert.Equal(new[] { "classifier.weight", "classifier.bias" }, target.LoadBaseModelSafetensors(path));
            AssertParametersEqual(source, target, name => name.StartsWith("vit.", StringComparison.Ordinal));
        }

        /// <summary>The head is the only thing a base-model load may leave out; an encoder tensor missing is an error, and nothing loads.</summary>
        [Fact]
        public void Base_model_file_missing_an_encoder_tensor_is_refused_with_its_name()
        {
            using var scope = torch.NewDisposeScope();
            var tensors = Safetensors.Load(VitModelFile(Randomized(451), "vit-model.safetensors"));
            tensors.Remove("encoder.layer.1.attention.attention.key.bias");
            string path = Path.Combine(folder, "incomplete.safetensors");
            Safetensors.Save(path, tensors);
            var target = Randomized(452);
            var before = Logits(target);

            var e = Assert.Throws<SafetensorsException>(() => target.LoadBaseModelSafetensors(path));
            log.WriteLine(e.Message);
            Assert.Contains("'vit.encoder.layer.1.attention.attention.key.bias' is missing from incomplete.safetensors", e.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("classifier", e.Message, StringComparison.Ordinal);
            Assert.True(Numerics.Identical(before, Logits(target)), "a refused load changes nothing");
        }

        /// <summary>Hugging Face's ViTs interpolate their position table to other image sizes; ours refuses it, naming the dimension.</summary>
        [Fact]
        public void Checkpoint_for_another_image_size_is_refused_at_the_position_table()
        {
            using var scope = torch.NewDisposeScope();
            var tensors = Safetensors.Load(Saved(Randomized(461), "vit.safetensors"));
            tensors["vit.embeddings.position_embeddings"] = torch.randn(1, 49 + 1, 32); // 28 x 28 images in 4 x 4 patches
            string path = Path.Combine(folder, "28x28.safetensors");
            Safetensors.Save(path, tensors);

            var e = Assert.Throws<SafetensorsException>(() => TinyVit.CreateTorchSharp().LoadSafetensors(path));
            log.WriteLine(e.Message);
            Assert.Contains("tensor 'vit.embeddings.position_embeddings' in 28x28.safetensors has shape [1, 50, 32]; the model expects [1, 17, 32] (dimension 1: 50 vs 17)", e.Message, StringComparison.Ordinal);
        }

        [Fact]
        public void Layout_without_a_base_model_prefix_refuses_a_base_model_load()
        {
            using var scope = torch.NewDisposeScope();
            var t5 = TinyT5.CreateTorchSharp();
            var e = Assert.Throws<InvalidOperationException>(() => t5.LoadBaseModelSafetensors(Path.Combine(folder, "unused.safetensors")));
            Assert.Contains("Model 'TinyT5': T5 checkpoints have no base-model prefix", e.Message, StringComparison.Ordinal);
        }
    }
}
