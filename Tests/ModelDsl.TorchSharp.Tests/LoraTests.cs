using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using ModelDsl.Checkpoints;
using ModelDsl.Training;
using ModelDsl.TorchSharp.Training;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>
    /// LoRA on GPT-2's layout: TinyLoraGpt is TinyGpt with rank-4 adapters (alpha 8, scale 2) on the fused c_attn and on
    /// both feed-forward projections. The reference is TinyGpt's elementary forward pass
    /// (<see cref="GeneratedGptNumericsTests.ReferenceLogits"/>) run on merged weights W + 2 (B A)^T built from the
    /// model's own tensors, so autograd through it gives reference gradients for A and B too. Tolerances as in
    /// <see cref="GeneratedGptNumericsTests"/>.
    /// </summary>
    public sealed class LoraTests : IDisposable
    {
        private static readonly GeneratedGptNumericsTests.Architecture Gpt = new(2, 4, 1e-5, true, Activation.GeluTanh, true);
        private static readonly string[] Adapted = { "attn.c_attn", "mlp.c_fc", "mlp.c_proj" };

        private readonly ITestOutputHelper log;
        private readonly string directory = Path.Combine(Path.GetTempPath(), "modeldsl-lora-" + Guid.NewGuid().ToString("N"));

        public LoraTests(ITestOutputHelper log)
        {
            this.log = log;
            Directory.CreateDirectory(directory);
        }

        public void Dispose() => Directory.Delete(directory, recursive: true);

        /// <summary>Random weights everywhere (<see cref="Numerics.Randomize"/>), then adapters of a trained size: A N(0, 1/sqrt(in)), B N(0, 0.1).</summary>
        private static Dictionary<string, Tensor> Randomize(nn.Module model, ScalarType dtype, ulong seed)
        {
            model.to(dtype);
            Numerics.Randomize(model, seed);
            var p = Numerics.Parameters(model);
            using var generator = new Generator(seed + 1);
            using (torch.no_grad())
                foreach (var (name, tensor) in p)
                {
                    if (name.EndsWith(".lora_A.weight", StringComparison.Ordinal)) tensor.normal_(0, 1 / Math.Sqrt(tensor.shape[1]), generator);
                    if (name.EndsWith(".lora_B.weight", StringComparison.Ordinal)) tensor.normal_(0, 0.1, generator);
                }
            model.eval();
            return p;
        }

        /// <summary>The weights the adapted projections act as: W + scale (B A)^T for GPT-2's [in, out] Conv1D weights.</summary>
        private static Dictionary<string, Tensor> MergedByHand(IReadOnlyDictionary<string, Tensor> p)
        {
            var merged = p.Where(kv => !kv.Key.Contains(".lora_", StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value);
            for (int layer = 0; layer < 2; layer++)
                foreach (var module in Adapted)
                {
                    string m = $"transformer.h.{layer}.{module}";
                    merged[m + ".weight"] = p[m + ".weight"] + TinyLoraGpt.TorchSharpModel.LoraAlpha / TinyLoraGpt.TorchSharpModel.Rank
                                            * p[m + ".lora_B.weight"].matmul(p[m + ".lora_A.weight"]).t();
                }
            return merged;
        }

        private static Dictionary<string, Tensor> Gradients(nn.Module model, Tensor loss)
        {
            model.zero_grad();
            loss.backward();
            return model.named_parameters().Where(q => q.parameter.grad is not null).ToDictionary(q => q.name, q => q.parameter.grad!.clone());
        }

        // ------------------------------------------------------------------------------------------------------

        [Fact]
        public void Adapters_are_PEFT_modules_under_the_adapted_projections_and_GPT2s_fused_c_attn_is_adapted_whole()
        {
            using var scope = torch.NewDisposeScope();
            using var model = TinyLoraGpt.CreateTorchSharp();
            var p = Numerics.Parameters(model);
            Assert.Equal(new long[] { 4, 32 }, p["transformer.h.0.attn.c_attn.lora_A.weight"].shape);  // [r, in]
            Assert.Equal(new long[] { 96, 4 }, p["transformer.h.0.attn.c_attn.lora_B.weight"].shape);  // [out, r]: q, k and v
            Assert.Equal(new long[] { 4, 64 }, p["transformer.h.1.mlp.c_proj.lora_A.weight"].shape);
            Assert.Equal(new long[] { 32, 4 }, p["transformer.h.1.mlp.c_proj.lora_B.weight"].shape);
            Assert.DoesNotContain("transformer.h.0.attn.c_proj.lora_A.weight", p.Keys); // Output is not targeted
            Assert.Equal(12, p.Keys.Count(k => k.Contains(".lora_", StringComparison.Ordinal)));

            var lora = model.Lora;
            Assert.Equal(6, lora.Count);
            Assert.Equal(4, lora.Rank);
            Assert.Equal(8.0, lora.Alpha);
            Assert.All(lora.Adapters, a => Assert.Equal(TinyLoraGpt.TorchSharpModel.LoraScale, a.Scale));
            Assert.All(lora.Adapters, a => Assert.True(a.FanInFanOut)); // Conv1D weights are [in, out]
            Assert.Equal(2 * (4 * 32 + 96 * 4 + 4 * 32 + 64 * 4 + 4 * 64 + 32 * 4), lora.ParameterCount);
            Assert.Equal(new[] { "c_attn", "c_fc", "mlp.c_proj" }, lora.TargetModules); // "c_proj" alone would also adapt attn.c_proj in PEFT
            Assert.True(Numerics.Identical(p["transformer.h.1.mlp.c_fc.lora_B.weight"], torch.zeros(64, 4)), "B starts at zero");
        }

        [Fact]
        public void Base_weights_load_into_the_adapted_model_which_then_equals_the_base_model()
        {
            using var scope = torch.NewDisposeScope();
            using var baseModel = TinyGpt.CreateTorchSharp();
            Numerics.Randomize(baseModel, 11);
            baseModel.eval();
            string file = Path.Combine(directory, "base.safetensors");
            baseModel.SaveSafetensors(file);
            using var adapted = TinyLoraGpt.CreateTorchSharp();
            adapted.eval();

            // Strict loading names what the base checkpoint lacks.
            var strict = Assert.Throws<SafetensorsException>(() => adapted.LoadSafetensors(file));
            Assert.Contains("TinyLoraGpt", strict.Message);
            Assert.Contains("12 parameters are missing", strict.Message);
            Assert.Contains("'transformer.h.0.attn.c_attn.lora_A.weight'", strict.Message);

            adapted.Lora.LoadBase(file);
            var ids = Numerics.RandomIds(2, 16, 50, 12);
            using var noGrad = torch.no_grad();
            Assert.True(Numerics.Identical(adapted.Forward(ids).Logits, baseModel.Forward(ids).Logits), "B = 0: the adapters add exact zeros");

            // The base checkpoint must still be whole: a missing base tensor is an error, adapters or not.
            var partial = Path.Combine(directory, "partial.safetensors");
            ModuleWeights.Save(baseModel, partial, include: name => name != "transformer.h.1.ln_2.bias");
            var e = Assert.Throws<SafetensorsException>(() => adapted.Lora.LoadBase(partial));
            Assert.Contains("'transformer.h.1.ln_2.bias' is missing", e.Message);
        }

        [Theory]
        [InlineData(ScalarType.Float64)]
        [InlineData(ScalarType.Float32)]
        public void Adapted_logits_loss_and_gradients_match_the_base_reference_on_weights_merged_by_hand(ScalarType dtype)
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(dtype);
            using var scope = torch.NewDisposeScope();
            using var model = TinyLoraGpt.CreateTorchSharp();
            var p = Randomize(model, dtype, 21);
            var ids = Numerics.RandomIds(3, 16, 50, 22);
            var targets = Numerics.RandomIds(3, 16, 50, 23);

            var expectedLogits = GeneratedGptNumericsTests.ReferenceLogits(MergedByHand(p), Gpt, ids);
            var baseLogits = GeneratedGptNumericsTests.ReferenceLogits(p, Gpt, ids);
            double effect = (expectedLogits - baseLogits).abs().max().to(ScalarType.Float64).item<double>();
            log.WriteLine($"{dtype}: the adapters move the logits by up to {effect:F3}");
            Assert.True(effect > 0.1, "the adapters must matter for the test to mean anything");
            Numerics.AssertClose(model.Forward(ids).Logits, expectedLogits, atol, rtol, $"{dtype} logits", log);

            var loss = model.Loss(ids, targets);
            var expectedLoss = GeneratedGptNumericsTests.ReferenceLoss(GeneratedGptNumericsTests.ReferenceLogits(MergedByHand(p), Gpt, ids), targets);
            Numerics.AssertClose(loss, expectedLoss, atol, rtol, $"{dtype} loss", log);
            var generated = Gradients(model, loss);
            var reference = Gradients(model, expectedLoss);
            Assert.Equal(p.Count, generated.Count);
            double worst = 0;
            foreach (var name in p.Keys)
                worst = Math.Max(worst, Numerics.AssertClose(generated[name], reference[name], atol, rtol, $"{dtype} dLoss/d{name}"));
            log.WriteLine($"{dtype} gradients of {p.Count} tensors (12 adapters): max |diff| = {worst:E2}");
        }

        [Fact]
        public void Merged_weights_without_adapters_give_the_adapted_logits()
        {
            var (atol, rtol) = GeneratedGptNumericsTests.Tolerance(ScalarType.Float64);
            using var scope = torch.NewDisposeScope();
            using var adapted = TinyLoraGpt.CreateTorchSharp();
            Randomize(adapted, ScalarType.Float64, 31);
            var ids = Numerics.RandomIds(2, 16, 50, 32);
            using var noGrad = torch.no_grad();
            var before = adapted.Forward(ids).Logits;

            adapted.Lora.Merge();
            Assert.All(adapted.Lora.Adapters, a => Assert.Equal(0.0, a.B.abs().max().item<double>()));
            Numerics.AssertClose(adapted.Forward(ids).Logits, before, atol, rtol, "merged, adapters zeroed vs adapted", log);

            string file = Path.Combine(directory, "merged.safetensors");
            adapted.Lora.SaveBase(file);
            Assert.DoesNotContain(SafetensorsFile.ReadHeader(file).Tensors.Keys, k => k.Contains("lora", StringComparison.Ordinal));
            using var plain = TinyGpt.CreateTorchSharp();
            plain.to(ScalarType.Float64);
            plain.eval();
            plain.LoadSafetensors(file); // strict: exactly the base model's tensors
            Numerics.AssertClose(plain.Forward(ids).Logits, before, atol, rtol, "TinyGpt with the merged weights vs TinyLoraGpt with adapters", log);
        }

        [Fact]
        public void After_freezing_only_the_adapters_get_gradients_and_change()
        {
            using var scope = torch.NewDisposeScope();
            using var model = TinyLoraGpt.CreateTorchSharp();
            var p = Randomize(model, ScalarType.Float32, 41);
            var lora = model.Lora;
            lora.Freeze();
            Assert.All(p, kv => Assert.Equal(lora.IsAdapterTensor(kv.Key), kv.Value.requires_grad));

            var ids = Numerics.RandomIds(2, 16, 50, 42);
            var grads = Gradients(model, model.Loss(ids, Numerics.RandomIds(2, 16, 50, 43)));
            Assert.Equal(p.Keys.Where(lora.IsAdapterTensor).OrderBy(k => k), grads.Keys.OrderBy(k => k));
            Assert.All(grads.Values, g => Assert.True(g.abs().max().item<float>() > 0));

            // The trainer optimises exactly the adapters: a few steps move them and nothing else.
            var before = p.ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
            var data = new TokenBatches(Enumerable.Range(0, 600).Select(i => (i * 7 + i / 11) % 50).ToArray(), 50, validationFraction: 0.1);
            using var trainer = new LanguageModelTrainer(model, new TrainingOptions { Steps = 3, BatchSize = 2, SequenceLength = 16, EvalEvery = 0, WarmupSteps = 1, LearningRate = 1e-2 });
            Assert.Equal(lora.ParameterCount, trainer.ParameterCount);
            trainer.Train(data);
            foreach (var (name, tensor) in p)
                Assert.True(lora.IsAdapterTensor(name) != Numerics.Identical(tensor, before[name]), $"{name}: {(lora.IsAdapterTensor(name) ? "an adapter did not change" : "a frozen weight changed")}");
        }

        [Fact]
        public void Adapters_round_trip_under_PEFTs_names_and_config()
        {
            using var scope = torch.NewDisposeScope();
            using var trained = TinyLoraGpt.CreateTorchSharp();
            var p = Randomize(trained, ScalarType.Float32, 51);
            string adapter = Path.Combine(directory, "adapter");
            trained.Lora.SaveAdapters(adapter);

            var names = SafetensorsFile.ReadHeader(Path.Combine(adapter, LoraAdapters.WeightsFile)).Tensors.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
            var expected = new[] { 0, 1 }.SelectMany(l => Adapted.SelectMany(m => new[] { "A", "B" }.Select(ab => $"base_model.model.transformer.h.{l}.{m}.lora_{ab}.weight")))
                .OrderBy(k => k, StringComparer.Ordinal).ToList();
            Assert.Equal(expected, names);
            using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(adapter, LoraAdapters.ConfigFile))))
            {
                var root = config.RootElement;
                log.WriteLine(root.ToString());
                Assert.Equal("LORA", root.GetProperty("peft_type").GetString());
                Assert.Equal("CAUSAL_LM", root.GetProperty("task_type").GetString());
                Assert.Equal(4, root.GetProperty("r").GetInt32());
                Assert.Equal(8.0, root.GetProperty("lora_alpha").GetDouble());
                Assert.Equal(new[] { "c_attn", "c_fc", "mlp.c_proj" }, root.GetProperty("target_modules").EnumerateArray().Select(t => t.GetString()));
                Assert.True(root.GetProperty("fan_in_fan_out").GetBoolean());
            }

            using var fresh = TinyLoraGpt.CreateTorchSharp();
            var freshBase = Numerics.Parameters(fresh).Where(kv => !fresh.Lora.IsAdapterTensor(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
            fresh.Lora.LoadAdapters(adapter);
            foreach (var (name, tensor) in Numerics.Parameters(fresh))
                Assert.True(Numerics.Identical(tensor, fresh.Lora.IsAdapterTensor(name) ? p[name] : freshBase[name]),
                    $"{name}: {(fresh.Lora.IsAdapterTensor(name) ? "adapter not loaded" : "base weight changed")}");
        }

        [Fact]
        public void Loading_adapters_refuses_another_rank_or_alpha_and_incomplete_or_foreign_files()
        {
            using var scope = torch.NewDisposeScope();
            using var model = TinyLoraGpt.CreateTorchSharp();
            string adapter = Path.Combine(directory, "adapter");
            model.Lora.SaveAdapters(adapter);
            string config = Path.Combine(adapter, LoraAdapters.ConfigFile), weights = Path.Combine(adapter, LoraAdapters.WeightsFile);
            string original = File.ReadAllText(config);

            File.WriteAllText(config, original.Replace("\"r\": 4", "\"r\": 8"));
            var rank = Assert.Throws<ArgumentException>(() => model.Lora.LoadAdapters(adapter));
            Assert.Contains("Model 'TinyLoraGpt'", rank.Message);
            Assert.Contains("r = 8, but the model's adapters have rank 4", rank.Message);
            File.WriteAllText(config, original.Replace("\"lora_alpha\": 8", "\"lora_alpha\": 16"));
            Assert.Contains("lora_alpha = 16, but the model's adapters have 8", Assert.Throws<ArgumentException>(() => model.Lora.LoadAdapters(adapter)).Message);
            File.WriteAllText(config, original);

            var tensors = Safetensors.Load(weights);
            var incomplete = tensors.Where(kv => kv.Key != "base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight").ToList();
            Safetensors.Save(weights, incomplete);
            Assert.Contains("'transformer.h.1.mlp.c_fc.lora_B.weight' is missing", Assert.Throws<SafetensorsException>(() => model.Lora.LoadAdapters(adapter)).Message);
            // Base tensors, under PEFT's prefix or under their own names, are not adapters and load nowhere.
            var wte = model.transformer.wte.weight!.detach().clone();
            foreach (var foreign in new[] { "base_model.model.transformer.wte.weight", "transformer.wte.weight" })
            {
                Safetensors.Save(weights, tensors.Append(new KeyValuePair<string, Tensor>(foreign, torch.zeros(50, 32))));
                var e = Assert.Throws<SafetensorsException>(() => model.Lora.LoadAdapters(adapter));
                Assert.Contains($"1 tensor(s) in adapter_model.safetensors are not its LoRA adapters under PEFT's names", e.Message);
                Assert.Contains($"'{foreign}'", e.Message);
            }
            Assert.True(Numerics.Identical(model.transformer.wte.weight!, wte), "no base weight changed");
            Assert.Throws<FileNotFoundException>(() => model.Lora.LoadAdapters(Path.Combine(directory, "nowhere")));
        }

        [Fact]
        public void A_model_without_adapters_says_so()
        {
            using var model = TinyGpt.CreateTorchSharp();
            Assert.Equal(0, model.Lora.Count);
            var e = Assert.Throws<InvalidOperationException>(() => model.Lora.Freeze());
            Assert.Contains("Model 'TinyGpt' has no LoRA adapters", e.Message);
            Assert.Throws<InvalidOperationException>(() => model.Lora.Merge());
            Assert.True(model.parameters().All(q => q.requires_grad), "nothing was frozen");
        }
    }
}
