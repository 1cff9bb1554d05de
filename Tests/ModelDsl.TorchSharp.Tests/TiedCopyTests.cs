using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using ModelDsl.Checkpoints;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>
    /// ModuleWeights.Load's tiedCopies: a model that ties its LM head to the embedding has no lm_head parameter, so
    /// a checkpoint's lm_head.weight is skipped; when it is not a copy of the embedding, skipping it would silently load
    /// a different model than the checkpoint holds.
    /// </summary>
    public sealed class TiedCopyTests : IDisposable
    {
        private readonly string folder = Directory.CreateTempSubdirectory("modeldsl-tied-").FullName;

        public TiedCopyTests() => TorchSharpRuntime.EnsureLoaded();

        public void Dispose() => Directory.Delete(folder, recursive: true);

        /// <summary>Like a generated GPT with [TiedEmbeddings]: the head is F.linear(x, wte.weight), no parameter of its own.</summary>
        private sealed class TiedHead : nn.Module<Tensor, Tensor>
        {
            public readonly global::TorchSharp.Modules.Embedding wte;
            public readonly global::TorchSharp.Modules.Parameter bias;

            public TiedHead(ScalarType dtype = ScalarType.Float32) : base(nameof(TiedHead))
            {
                wte = nn.Embedding(10, 4, dtype: dtype);
                bias = nn.Parameter(torch.zeros(10, dtype: dtype));
                RegisterComponents();
            }

            public override Tensor forward(Tensor x) => nn.functional.linear(wte.forward(x), wte.weight!) + bias;
        }

        private static readonly Dictionary<string, string> Tie = new() { ["lm_head.weight"] = "wte.weight" };

        /// <summary>The generated models' MapCheckpointName skips lm_head.weight the same way.</summary>
        private static string? SkipHead(string name) => name == "lm_head.weight" ? null : name;

        private string Save(string name, params (string Name, Tensor Value)[] tensors)
        {
            string path = Path.Combine(folder, name);
            Safetensors.Save(path, tensors.Select(t => KeyValuePair.Create(t.Name, t.Value)));
            return path;
        }

        private static Dictionary<string, byte[]> Snapshot(nn.Module m)
            => m.named_parameters().ToDictionary(p => p.name, p => p.parameter.contiguous().bytes.ToArray());

        [Fact]
        public void Untied_checkpoint_is_rejected_naming_both_tensors_and_nothing_is_loaded()
        {
            torch.manual_seed(21);
            var wte = torch.randn(10, 4);
            var head = wte.clone();
            head[3, 1] = torch.tensor(0.25f);
            string path = Save("untied.safetensors", ("wte.weight", wte), ("bias", torch.ones(10)), ("lm_head.weight", head));

            var model = new TiedHead();
            var before = Snapshot(model);
            var e = Assert.Throws<SafetensorsException>(() => ModuleWeights.Load(model, path, "TinyTied", SkipHead, Tie));
            Assert.Contains("Model 'TinyTied': tensor 'lm_head.weight' in untied.safetensors differs from tensor 'wte.weight'", e.Message);
            Assert.Contains("1 of 40 elements", e.Message);
            Assert.Contains("[3, 1]", e.Message);
            Assert.Contains("untied", e.Message);
            Assert.Contains("[TiedEmbeddings]", e.Message);
            Assert.Equal(path, e.FilePath);
            Assert.Equal("lm_head.weight", e.TensorName);
            Assert.Equal(before, Snapshot(model));

            // Without the check (the behaviour before tiedCopies) the head is silently dropped.
            ModuleWeights.Load(model, path, "TinyTied", SkipHead);
            Assert.True(model.wte.weight!.eq(wte).all().item<bool>());
        }

        [Fact]
        public void Tied_copy_equal_after_conversion_to_the_parameter_dtype_loads()
        {
            torch.manual_seed(22);
            var wte = torch.randn(10, 4).to(ScalarType.BFloat16).to(ScalarType.Float32); // exactly representable in BF16
            wte[0, 0] = torch.tensor(float.NaN);                                        // NaN matches NaN
            string path = Save("tied.safetensors", ("wte.weight", wte), ("bias", torch.ones(10)), ("lm_head.weight", wte.to(ScalarType.BFloat16)));
            var model = new TiedHead();
            ModuleWeights.Load(model, path, "TinyTied", SkipHead, Tie);
            Assert.Equal(wte.contiguous().bytes.ToArray(), model.wte.weight!.contiguous().bytes.ToArray());

            // In a BF16 model, values that differ only below BF16 precision are the same parameter.
            var fine = torch.full(10, 4, 1.0f);
            var finer = torch.full(10, 4, 1.0f + 1e-4f);
            string close = Save("close.safetensors", ("wte.weight", fine), ("bias", torch.ones(10)), ("lm_head.weight", finer));
            var bf16 = new TiedHead(ScalarType.BFloat16);
            ModuleWeights.Load(bf16, close, "TinyTied", SkipHead, Tie);
            var model32 = new TiedHead();
            Assert.Throws<SafetensorsException>(() => ModuleWeights.Load(model32, close, "TinyTied", SkipHead, Tie));

            // A file without the copy is fine: nothing to compare.
            string plain = Save("plain.safetensors", ("wte.weight", wte), ("bias", torch.ones(10)));
            ModuleWeights.Load(new TiedHead(), plain, "TinyTied", SkipHead, Tie);
        }

        [Fact]
        public void Tied_copy_of_another_shape_or_kind_is_reported_with_the_other_problems()
        {
            var model = new TiedHead();
            var before = Snapshot(model);
            string path = Save("shape.safetensors", ("wte.weight", torch.zeros(10, 4)), ("lm_head.weight", torch.zeros(10, 5)));
            var e = Assert.Throws<SafetensorsException>(() => ModuleWeights.Load(model, path, "TinyTied", SkipHead, Tie));
            Assert.Contains("'bias' is missing", e.Message);
            Assert.Contains("tensor 'lm_head.weight' in shape.safetensors has shape [10, 5]; its tied parameter 'wte.weight' has [10, 4]", e.Message);
            Assert.Equal(before, Snapshot(model));

            string ints = Save("ints.safetensors", ("wte.weight", torch.zeros(10, 4)), ("bias", torch.ones(10)),
                ("lm_head.weight", torch.zeros(10, 4, dtype: ScalarType.Int32)));
            e = Assert.Throws<SafetensorsException>(() => ModuleWeights.Load(model, ints, "TinyTied", SkipHead, Tie));
            Assert.Contains("tensor 'lm_head.weight' in ints.safetensors has dtype I32, which cannot be converted to the model's Float32", e.Message);
            Assert.Equal(before, Snapshot(model));
        }

        [Fact]
        public void Tied_copy_of_an_unknown_parameter_is_an_argument_error()
        {
            string path = Save("any.safetensors", ("wte.weight", torch.zeros(10, 4)), ("bias", torch.ones(10)));
            var e = Assert.Throws<ArgumentException>(() => ModuleWeights.Load(new TiedHead(), path, "TinyTied", SkipHead,
                new Dictionary<string, string> { ["lm_head.weight"] = "transformer.wte.weight" }));
            Assert.Equal("tiedCopies", e.ParamName);
            Assert.Contains("'transformer.wte.weight'", e.Message);
        }
    }
}
