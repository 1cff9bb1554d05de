using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using ModelDsl.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp
{
    /// <summary>
    /// One adapted projection: PEFT's lora_A [r, in] and lora_B [out, r] beside the base weight, which is [in, out] for
    /// GPT-2's Conv1D (PEFT's fan_in_fan_out) and [out, in] for nn.Linear. The projection computes
    /// base(x) + Alpha / r x B A x.
    /// </summary>
    public sealed record LoraAdapter(string Module, Tensor Weight, bool FanInFanOut, Tensor A, Tensor B, double Alpha)
    {
        /// <summary>The rank r.</summary>
        public int Rank => (int)A.shape[0];

        /// <summary>Alpha / r.</summary>
        public double Scale => Alpha / Rank;

        /// <summary>The checkpoint names of the two adapter tensors ("{Module}.lora_A.weight", "{Module}.lora_B.weight").</summary>
        public (string A, string B) Names => (Module + ".lora_A.weight", Module + ".lora_B.weight");

        /// <summary>The update Scale x B A in the base weight's orientation (transposed for a Conv1D).</summary>
        public Tensor Delta()
        {
            var delta = B.matmul(A) * Scale; // [out, in]
            return FanInFanOut ? delta.t() : delta;
        }
    }

    /// <summary>
    /// The LoRA adapters of a model, found in its module tree (every Conv1D or Linear that carries lora_A and lora_B),
    /// and what one does with them: train them alone (<see cref="Freeze"/>), start from the base model's checkpoint
    /// (<see cref="LoadBase"/>), save and load them as PEFT does (<see cref="SaveAdapters"/>, <see cref="LoadAdapters"/>),
    /// fold them into the base weights (<see cref="Merge"/>) and save the base weights alone (<see cref="SaveBase"/>).
    /// Get one from <see cref="TransformerModel.Lora"/>.
    /// </summary>
    /// <example>
    /// <code>
    /// model.Lora.LoadBase("base.safetensors");   // adapters keep their start: B = 0, so the model equals the base
    /// model.Lora.Freeze();                       // only lora_A and lora_B train
    /// trainer.Train(newData);
    /// model.Lora.SaveAdapters("adapter");        // adapter_model.safetensors + adapter_config.json, as PEFT's save_pretrained
    /// model.Lora.Merge();                        // W += alpha / r B A, then B = 0
    /// model.Lora.SaveBase("merged.safetensors"); // loads into the declaration without [Lora]
    /// </code>
    /// </example>
    public sealed class LoraAdapters
    {
        /// <summary>What PEFT puts in front of the adapted model's module paths (PeftModel.base_model.model).</summary>
        public const string PeftPrefix = "base_model.model.";

        /// <summary>The adapter weights' file name in a PEFT adapter directory.</summary>
        public const string WeightsFile = "adapter_model.safetensors";

        /// <summary>The adapter configuration's file name in a PEFT adapter directory.</summary>
        public const string ConfigFile = "adapter_config.json";

        private readonly TransformerModel model;
        private readonly HashSet<string> adapterTensors;

        internal LoraAdapters(TransformerModel model)
        {
            this.model = model;
            var adapters = new List<LoraAdapter>();
            foreach (var (name, module) in model.named_modules())
            {
                if (module is Conv1D { lora_A: { } convA, lora_B: { } convB } conv)
                    adapters.Add(new LoraAdapter(name, conv.weight, FanInFanOut: true, convA.weight, convB.weight, conv.LoraAlpha));
                else if (module is Linear { lora_A: { } linearA, lora_B: { } linearB } linear)
                    adapters.Add(new LoraAdapter(name, linear.weight, FanInFanOut: false, linearA.weight, linearB.weight, linear.LoraAlpha));
            }
            Adapters = adapters;
            adapterTensors = new HashSet<string>(adapters.SelectMany(a => new[] { a.Names.A, a.Names.B }), StringComparer.Ordinal);
        }

        /// <summary>The adapted projections, in module order.</summary>
        public IReadOnlyList<LoraAdapter> Adapters { get; }

        /// <summary>How many projections are adapted.</summary>
        public int Count => Adapters.Count;

        /// <summary>The rank r of the model's adapters (one declaration, one rank).</summary>
        public int Rank => Required().Select(a => a.Rank).Distinct().Single();

        /// <summary>PEFT's lora_alpha of the model's adapters.</summary>
        public double Alpha => Required().Select(a => a.Alpha).Distinct().Single();

        /// <summary>Scalars in the adapters.</summary>
        public long ParameterCount => Adapters.Sum(a => a.A.numel() + a.B.numel());

        /// <summary>Whether a parameter name is one of the adapters' ("...c_attn.lora_A.weight").</summary>
        public bool IsAdapterTensor(string name) => adapterTensors.Contains(name);

        /// <summary>
        /// PEFT's target_modules for these adapters: for each adapted projection, the shortest suffix of its path that
        /// names no projection without adapters (PEFT adapts every module whose path ends in ".{target}"). GPT-2 with
        /// Query | Value gives ["c_attn"]; adapting the feed-forward adds "c_fc" and "mlp.c_proj" ("c_proj" alone would
        /// also catch attn.c_proj).
        /// </summary>
        public IReadOnlyList<string> TargetModules
        {
            get
            {
                var adapted = new HashSet<string>(Adapters.Select(a => a.Module), StringComparer.Ordinal);
                var others = model.named_modules()
                    .Where(m => m.module is Conv1D or Linear && !adapted.Contains(m.name)
                                && !m.name.EndsWith(".lora_A", StringComparison.Ordinal) && !m.name.EndsWith(".lora_B", StringComparison.Ordinal))
                    .Select(m => m.name).ToList();
                var targets = new SortedSet<string>(StringComparer.Ordinal);
                foreach (var path in adapted)
                {
                    var segments = path.Split('.');
                    for (int take = 1; take <= segments.Length; take++)
                    {
                        string suffix = string.Join(".", segments.Skip(segments.Length - take));
                        if (others.Any(o => o == suffix || o.EndsWith("." + suffix, StringComparison.Ordinal))) continue;
                        targets.Add(suffix);
                        break;
                    }
                }
                return targets.ToList();
            }
        }

        /// <summary>
        /// Trains the adapters alone: every other parameter stops requiring gradients (the trainer then skips it and
        /// AdamW keeps no moments for it); lora_A and lora_B require them.
        /// </summary>
        /// <exception cref="InvalidOperationException">The model has no adapters.</exception>
        public void Freeze()
        {
            Required();
            foreach (var (name, parameter) in model.named_parameters())
                parameter.requires_grad = IsAdapterTensor(name);
        }

        /// <summary>
        /// Loads the base model's weights (a checkpoint of the same declaration without [Lora], with or without the
        /// layout's optional prefix): every parameter but the adapters must be in it, the adapters keep their values.
        /// All or nothing, as <see cref="TransformerModel.LoadSafetensors(string)"/>.
        /// </summary>
        public void LoadBase(string path)
        {
            ArgumentNullException.ThrowIfNull(path);
            model.LoadSafetensors(path, IsAdapterTensor);
        }

        /// <summary>Saves every weight but the adapters, under the layout's names: after <see cref="Merge"/>, the merged model.</summary>
        public void SaveBase(string path, IReadOnlyDictionary<string, string>? metadata = null)
        {
            ArgumentNullException.ThrowIfNull(path);
            ModuleWeights.Save(model, path, metadata, include: name => !IsAdapterTensor(name));
        }

        /// <summary>
        /// Writes the adapters as PEFT's save_pretrained does, into <paramref name="directory"/>: adapter_model.safetensors
        /// with the tensors under "base_model.model.{module}.lora_A.weight" (and lora_B), and adapter_config.json with
        /// peft_type LORA, r, lora_alpha, target_modules and fan_in_fan_out (true for GPT-2's Conv1D).
        /// </summary>
        /// <exception cref="InvalidOperationException">The model has no adapters.</exception>
        public void SaveAdapters(string directory)
        {
            ArgumentNullException.ThrowIfNull(directory);
            var adapters = Required();
            Directory.CreateDirectory(directory);
            var tensors = adapters.SelectMany(a => new[]
            {
                new KeyValuePair<string, Tensor>(PeftPrefix + a.Names.A, a.A),
                new KeyValuePair<string, Tensor>(PeftPrefix + a.Names.B, a.B),
            });
            Safetensors.Save(Path.Combine(directory, WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
            AtomicFile.WriteAllText(Path.Combine(directory, ConfigFile), ConfigJson());
        }

        /// <summary>
        /// Reads adapters that <see cref="SaveAdapters"/> or PEFT wrote (a directory with adapter_model.safetensors and
        /// adapter_config.json). The configuration's r and lora_alpha must be the model's; the file must hold exactly
        /// the model's adapters under PEFT's names. All or nothing: on any mismatch no weight changes.
        /// </summary>
        /// <exception cref="FileNotFoundException">A file of the directory is missing.</exception>
        /// <exception cref="ArgumentException">The configuration does not describe this model's adapters.</exception>
        /// <exception cref="SafetensorsException">The weights file is invalid or does not match the adapters.</exception>
        public void LoadAdapters(string directory)
        {
            ArgumentNullException.ThrowIfNull(directory);
            Required();
            string config = Path.Combine(directory, ConfigFile), weights = Path.Combine(directory, WeightsFile);
            if (!File.Exists(config)) throw new FileNotFoundException($"Model '{model.Card.Name}': no {ConfigFile} in '{directory}'.", config);
            if (!File.Exists(weights)) throw new FileNotFoundException($"Model '{model.Card.Name}': no {WeightsFile} in '{directory}'.", weights);
            CheckConfig(config);
            // Only adapters may load: a tensor under a base weight's own name must not overwrite it.
            var foreign = SafetensorsFile.ReadHeader(weights).Tensors.Keys.Where(name => AdapterOf(name) is null).ToList();
            if (foreign.Count > 0)
                throw new SafetensorsException(weights, foreign[0],
                    $"Model '{model.Card.Name}': {foreign.Count} tensor(s) in {WeightsFile} are not its LoRA adapters under PEFT's names " +
                    $"({PeftPrefix}<module>.lora_A.weight / .lora_B.weight): {string.Join(", ", foreign.Select(f => $"'{f}'"))}");
            ModuleWeights.Load(model, weights, model.Card.Name, AdapterOf, mayKeep: name => !IsAdapterTensor(name));
        }

        /// <summary>The adapter tensor a PEFT file name stands for ("base_model.model.X.lora_A.weight" → "X.lora_A.weight"), or null.</summary>
        private string? AdapterOf(string fileName)
            => fileName.StartsWith(PeftPrefix, StringComparison.Ordinal) && IsAdapterTensor(fileName.Substring(PeftPrefix.Length))
                ? fileName.Substring(PeftPrefix.Length) : null;

        /// <summary>
        /// Folds every adapter into its base weight (W += alpha / r x B A, transposed for a Conv1D's [in, out] weight)
        /// and zeroes lora_B, so the model computes what it computed before, now from its base weights alone.
        /// </summary>
        /// <exception cref="InvalidOperationException">The model has no adapters.</exception>
        public void Merge()
        {
            using var noGrad = torch.no_grad();
            foreach (var adapter in Required())
            {
                using var scope = torch.NewDisposeScope();
                adapter.Weight.add_(adapter.Delta());
                adapter.B.zero_();
            }
        }

        private IReadOnlyList<LoraAdapter> Required()
            => Adapters.Count > 0 ? Adapters
                : throw new InvalidOperationException($"Model '{model.Card.Name}' has no LoRA adapters; declare [Lora(Rank = ..., Alpha = ..., Targets = ...)] on it.");

        /// <summary>PEFT's adapter_config.json for these adapters (the fields PEFT needs to rebuild them; it fills in the rest).</summary>
        private string ConfigJson()
        {
            using var stream = new MemoryStream();
            using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
            {
                json.WriteStartObject();
                json.WriteString("peft_type", "LORA");
                string? task = model.Card.Task switch
                {
                    "CausalLanguageModel" => "CAUSAL_LM",
                    "SequenceToSequence" => "SEQ_2_SEQ_LM",
                    _ => null, // PEFT's other task types add trained heads (modules_to_save) that these files do not hold
                };
                if (task is null) json.WriteNull("task_type");
                else json.WriteString("task_type", task);
                json.WriteNumber("r", Rank);
                json.WriteNumber("lora_alpha", Alpha);
                json.WriteNumber("lora_dropout", 0.0);
                json.WriteStartArray("target_modules");
                foreach (var target in TargetModules) json.WriteStringValue(target);
                json.WriteEndArray();
                json.WriteBoolean("fan_in_fan_out", Adapters[0].FanInFanOut);
                json.WriteString("bias", "none");
                json.WriteNull("modules_to_save");
                json.WriteBoolean("inference_mode", true);
                json.WriteNull("base_model_name_or_path");
                json.WriteEndObject();
            }
            return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
        }

        private void CheckConfig(string path)
        {
            string text = File.ReadAllText(path, Encoding.UTF8);
            JsonDocument document;
            try { document = JsonDocument.Parse(text); }
            catch (JsonException e) { throw new ArgumentException($"Model '{model.Card.Name}': {path} is not valid JSON: {e.Message}", nameof(path), e); }
            using (document)
            {
                var root = document.RootElement;
                string Problem(string what) => $"Model '{model.Card.Name}': {path} {what}";
                if (root.ValueKind != JsonValueKind.Object) throw new ArgumentException(Problem("is not a JSON object."), nameof(path));
                if (root.TryGetProperty("peft_type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() != "LORA")
                    throw new ArgumentException(Problem($"describes a {type.GetString()} adapter, not LORA."), nameof(path));
                if (!root.TryGetProperty("r", out var r) || !r.TryGetInt32(out int rank))
                    throw new ArgumentException(Problem("has no integer \"r\"."), nameof(path));
                if (rank != Rank)
                    throw new ArgumentException(Problem($"has r = {rank}, but the model's adapters have rank {Rank}."), nameof(path));
                if (!root.TryGetProperty("lora_alpha", out var a) || !a.TryGetDouble(out double alpha))
                    throw new ArgumentException(Problem("has no number \"lora_alpha\"."), nameof(path));
                if (alpha != Alpha)
                    throw new ArgumentException(Problem(string.Format(CultureInfo.InvariantCulture,
                        "has lora_alpha = {0}, but the model's adapters have {1}: the update would be scaled by {0} / r instead of {1} / r.", alpha, Alpha)), nameof(path));
            }
        }
    }
}
