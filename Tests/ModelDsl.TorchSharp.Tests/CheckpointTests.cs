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
    /// Safetensors checkpoints of generated models: exact round trips, Hugging Face GPT-2 names and layouts, the
    /// GPT2Model flavour of real checkpoints, and errors that name the tensor and the dimension.
    /// </summary>
    public sealed class CheckpointTests : IDisposable
    {
        private readonly string folder = Directory.CreateTempSubdirectory("modeldsl-checkpoints-").FullName;
        private readonly ITestOutputHelper log;

        public CheckpointTests(ITestOutputHelper log) => this.log = log;

        public void Dispose() => Directory.Delete(folder, recursive: true);

        /// <summary>GPT-2's names as Hugging Face's GPT2LMHeadModel saves them (tied: no lm_head.weight) and their shapes.</summary>
        private static Dictionary<string, long[]> HuggingFaceGpt2Names(int vocab, int context, int hidden, int inner, int layers)
        {
            var names = new Dictionary<string, long[]>
            {
                ["transformer.wte.weight"] = new long[] { vocab, hidden },
                ["transformer.wpe.weight"] = new long[] { context, hidden },
                ["transformer.ln_f.weight"] = new long[] { hidden },
                ["transformer.ln_f.bias"] = new long[] { hidden },
            };
            for (int i = 0; i < layers; i++)
            {
                string h = $"transformer.h.{i}.";
                names[h + "ln_1.weight"] = new long[] { hidden };
                names[h + "ln_1.bias"] = new long[] { hidden };
                names[h + "attn.c_attn.weight"] = new long[] { hidden, 3 * hidden }; // Conv1D: [in, out]
                names[h + "attn.c_attn.bias"] = new long[] { 3 * hidden };
                names[h + "attn.c_proj.weight"] = new long[] { hidden, hidden };
                names[h + "attn.c_proj.bias"] = new long[] { hidden };
                names[h + "ln_2.weight"] = new long[] { hidden };
                names[h + "ln_2.bias"] = new long[] { hidden };
                names[h + "mlp.c_fc.weight"] = new long[] { hidden, inner };
                names[h + "mlp.c_fc.bias"] = new long[] { inner };
                names[h + "mlp.c_proj.weight"] = new long[] { inner, hidden };
                names[h + "mlp.c_proj.bias"] = new long[] { hidden };
            }
            return names;
        }

        private static TinyGpt.TorchSharpModel Randomized(ulong seed)
        {
            var model = TinyGpt.CreateTorchSharp();
            Numerics.Randomize(model, seed);
            model.eval();
            return model;
        }

        private static Tensor Logits(CausalLanguageModel model)
        {
            using var noGrad = torch.no_grad();
            return model.Forward(Numerics.RandomIds(2, model.Card.Context, model.Card.Vocab, 7), null).Logits;
        }

        private string SavedFile(CausalLanguageModel model, string name = "model.safetensors")
        {
            string path = Path.Combine(folder, name);
            model.SaveSafetensors(path);
            return path;
        }

        [Fact]
        public void Save_then_load_into_a_fresh_model_gives_identical_logits()
        {
            using var scope = torch.NewDisposeScope();
            var model = Randomized(201);
            string path = SavedFile(model);
            var fresh = TinyGpt.CreateTorchSharp();
            fresh.eval();
            Assert.False(Numerics.Identical(Logits(model), Logits(fresh)));

            fresh.LoadSafetensors(path);
            Assert.True(Numerics.Identical(Logits(model), Logits(fresh)), "logits after a round trip must be bitwise identical");
            foreach (var (name, p) in fresh.named_parameters())
                Assert.True(Numerics.Identical(p, model.get_parameter(name)!), name);
        }

        [Fact]
        public void Tied_model_saves_exactly_the_Hugging_Face_GPT2_names_and_shapes()
        {
            using var scope = torch.NewDisposeScope();
            string path = SavedFile(Randomized(211));
            var header = SafetensorsFile.ReadHeader(path);
            var expected = HuggingFaceGpt2Names(50, 16, 32, 64, 2);
            Assert.Equal(expected.Keys.OrderBy(k => k, StringComparer.Ordinal), header.Tensors.Keys.OrderBy(k => k, StringComparer.Ordinal));
            Assert.DoesNotContain("lm_head.weight", header.Tensors.Keys);
            foreach (var (name, shape) in expected)
            {
                Assert.Equal(shape, header.Tensors[name].Shape);
                Assert.Equal("F32", header.Tensors[name].DType);
            }
        }

        [Fact]
        public void Untied_model_saves_lm_head_weight_and_round_trips()
        {
            using var scope = torch.NewDisposeScope();
            var model = TinyUntiedReluGpt.CreateTorchSharp();
            Numerics.Randomize(model, 221);
            model.eval();
            string path = SavedFile(model);
            var header = SafetensorsFile.ReadHeader(path);
            var expected = HuggingFaceGpt2Names(50, 16, 32, 64, 2);
            expected["lm_head.weight"] = new long[] { 50, 32 }; // nn.Linear: [out, in]
            Assert.Equal(expected.Keys.OrderBy(k => k, StringComparer.Ordinal), header.Tensors.Keys.OrderBy(k => k, StringComparer.Ordinal));
            Assert.Equal(expected["lm_head.weight"], header.Tensors["lm_head.weight"].Shape);

            var fresh = TinyUntiedReluGpt.CreateTorchSharp();
            fresh.eval();
            fresh.LoadSafetensors(path);
            Assert.True(Numerics.Identical(Logits(model), Logits(fresh)));
        }

        /// <summary>
        /// Hugging Face's own "gpt2" model.safetensors is a GPT2Model file: no "transformer." prefix, no lm_head, and
        /// per layer an "h.{i}.attn.bias" causal-mask buffer [1, 1, context, context] (older exports also carry
        /// "h.{i}.attn.masked_bias"). Such a file must load as it is.
        /// </summary>
        [Fact]
        public void GPT2Model_style_file_with_mask_buffers_loads()
        {
            using var scope = torch.NewDisposeScope();
            var model = Randomized(231);
            var tensors = Safetensors.Load(SavedFile(model, "lm.safetensors"));
            var gpt2Model = tensors.ToDictionary(kv => kv.Key.Substring("transformer.".Length), kv => kv.Value);
            for (int i = 0; i < 2; i++)
            {
                gpt2Model[$"h.{i}.attn.bias"] = torch.ones(16, 16).tril().view(1, 1, 16, 16);
                gpt2Model[$"h.{i}.attn.masked_bias"] = torch.tensor(-1e4f);
            }
            string path = Path.Combine(folder, "gpt2model.safetensors");
            Safetensors.Save(path, gpt2Model);

            var fresh = TinyGpt.CreateTorchSharp();
            fresh.eval();
            fresh.LoadSafetensors(path);
            Assert.True(Numerics.Identical(Logits(model), Logits(fresh)));
        }

        /// <summary>Some GPT2LMHeadModel exports of tied models also store lm_head.weight (a copy of wte): it is skipped.</summary>
        [Fact]
        public void Tied_model_loads_a_file_that_also_stores_lm_head_weight()
        {
            using var scope = torch.NewDisposeScope();
            var model = Randomized(241);
            var tensors = Safetensors.Load(SavedFile(model, "tied.safetensors"));
            tensors["lm_head.weight"] = tensors["transformer.wte.weight"].clone();
            string path = Path.Combine(folder, "with-lm-head.safetensors");
            Safetensors.Save(path, tensors);

            var fresh = TinyGpt.CreateTorchSharp();
            fresh.eval();
            fresh.LoadSafetensors(path);
            Assert.True(Numerics.Identical(Logits(model), Logits(fresh)));
        }

        [Fact]
        public void Tensor_with_a_wrong_shape_is_named_with_the_dimension_and_nothing_is_loaded()
        {
            using var scope = torch.NewDisposeScope();
            var tensors = Safetensors.Load(SavedFile(Randomized(251)));
            tensors["transformer.h.1.mlp.c_fc.weight"] = torch.zeros(32, 63);
            string path = Path.Combine(folder, "wrong-shape.safetensors");
            Safetensors.Save(path, tensors);

            var target = Randomized(252);
            var before = Logits(target);
            var e = Assert.Throws<SafetensorsException>(() => target.LoadSafetensors(path));
            log.WriteLine(e.Message);
            Assert.Contains("TinyGpt", e.Message);
            Assert.Contains("transformer.h.1.mlp.c_fc.weight", e.Message);
            Assert.Contains("[32, 63]", e.Message);
            Assert.Contains("dimension 1: 63 vs 64", e.Message);
            Assert.Equal("transformer.h.1.mlp.c_fc.weight", e.TensorName);
            Assert.True(Numerics.Identical(before, Logits(target)), "a failed load must leave the model unchanged");
        }

        [Fact]
        public void Missing_tensor_is_named()
        {
            using var scope = torch.NewDisposeScope();
            var tensors = Safetensors.Load(SavedFile(Randomized(261)));
            Assert.True(tensors.Remove("transformer.ln_f.bias"));
            string path = Path.Combine(folder, "missing.safetensors");
            Safetensors.Save(path, tensors);

            var e = Assert.Throws<SafetensorsException>(() => TinyGpt.CreateTorchSharp().LoadSafetensors(path));
            log.WriteLine(e.Message);
            Assert.Contains("TinyGpt", e.Message);
            Assert.Contains("'transformer.ln_f.bias'", e.Message);
            Assert.Contains("missing", e.Message);
        }

        [Fact]
        public void Card_parameter_count_equals_the_module_parameters()
        {
            using var scope = torch.NewDisposeScope();
            var models = new (CausalLanguageModel Model, long ByHand)[]
            {
                // V*E + C*E + L * (4E [two norms] + E*3E + 3E + E*E + E + E*I + I + I*E + E) + 2E [ln_f]
                (TinyGpt.CreateTorchSharp(), 50 * 32 + 16 * 32 + 2 * (4 * 32 + 32 * 96 + 96 + 32 * 32 + 32 + 32 * 64 + 64 + 64 * 32 + 32) + 2 * 32),
                (TinyPostNormGpt.CreateTorchSharp(), 50 * 32 + 16 * 32 + 2 * (4 * 32 + 32 * 96 + 96 + 32 * 32 + 32 + 32 * 64 + 64 + 64 * 32 + 32)),
                (TinyUntiedReluGpt.CreateTorchSharp(), 50 * 32 + 16 * 32 + 2 * (4 * 32 + 32 * 96 + 96 + 32 * 32 + 32 + 32 * 64 + 64 + 64 * 32 + 32) + 2 * 32 + 50 * 32),
                (TinyDropoutGpt.CreateTorchSharp(), 50 * 32 + 16 * 32 + 2 * (4 * 32 + 32 * 96 + 96 + 32 * 32 + 32 + 32 * 64 + 64 + 64 * 32 + 32) + 2 * 32),
                (TrainGpt.CreateTorchSharp(), 64 * 64 + 32 * 64 + 2 * (4 * 64 + 64 * 192 + 192 + 64 * 64 + 64 + 64 * 256 + 256 + 256 * 64 + 64) + 2 * 64),
            };
            foreach (var (model, byHand) in models)
            {
                long counted = model.parameters().Sum(p => p.numel());
                log.WriteLine($"{model.Card.Name}: card {model.Card.ParameterCount}, parameters() {counted}, by hand {byHand}");
                Assert.Equal(byHand, counted);
                Assert.Equal(counted, model.Card.ParameterCount);
            }
        }
    }
}
