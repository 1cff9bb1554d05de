using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using ModelDsl.TorchSharp;
using ModelDsl.TorchSharp.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelDsl.Examples.Benchmarks
{
    /// <summary>
    /// <c>bench [--steps N] [--model kjv|small] [--rounds R]</c>: wall time of one full training step (forward, loss,
    /// backward, AdamW step, inside one dispose scope) of the generated model (A) against a hand-written nanoGPT-style
    /// TorchSharp GPT with the same dimensions and the same weights, with written-out attention (B) and with libtorch's
    /// fused SDPA (C). A 1024^3 fp32 torch.mm is timed alongside as the machine's matmul ceiling.
    /// <para>
    /// Everything is measured in one process and interleaved: each round runs a block of steps of every contender,
    /// with the order rotated from round to round, so drift (thermal, other processes, heap growth) hits all of
    /// them alike. Before timing, the losses (and the tied embedding's gradient) of A, B and C on the same batch are
    /// checked to agree: timing different computations would be meaningless.
    /// </para>
    /// </summary>
    internal static class TrainingStepBenchmark
    {
        private const float LossTolerance = 1e-4f;
        private const double GradientRelativeTolerance = 1e-3;
        private const int WarmupSteps = 5;

        private sealed record Config(string Key, ModelCard Card, Func<CausalLanguageModel> Create, double Dropout, double Epsilon,
            int Batch, int DefaultSteps, int DefaultRounds);

        private sealed class Contender
        {
            public required string Label { get; init; }
            public required Action Step { get; init; }
            public required double FlopsPerStep { get; init; }
            public List<double> Milliseconds { get; } = new();
        }

        public static int Run(string[] args)
        {
            var options = ParseOptions(args);
            var configs = new[]
            {
                new Config("kjv", KjvGpt.Card, () => KjvGpt.CreateTorchSharp(), KjvGpt.TorchSharpModel.DropoutRate, KjvGpt.TorchSharpModel.Epsilon,
                    Batch: 16, DefaultSteps: 30, DefaultRounds: 6),
                new Config("small", Gpt2Small.Card, () => Gpt2Small.CreateTorchSharp(), Gpt2Small.TorchSharpModel.DropoutRate, Gpt2Small.TorchSharpModel.Epsilon,
                    Batch: 1, DefaultSteps: 5, DefaultRounds: 5),
            };
            string key = options.TryGetValue("--model", out var m) ? m : "kjv";
            var config = configs.FirstOrDefault(c => c.Key == key)
                ?? throw new ArgumentException($"--model expects kjv or small, got '{key}'.");
            int steps = Int(options, "--steps", config.DefaultSteps);
            int rounds = Math.Min(steps, Int(options, "--rounds", config.DefaultRounds));
            if (steps < 1 || rounds < 1) throw new ArgumentException("--steps and --rounds must be at least 1.");
            const int time = 128;
            var card = config.Card;
            if (time > card.Context) throw new ArgumentException($"T={time} exceeds the context of {card.Name}.");

            TorchSharpRuntime.EnsureLoaded();
            torch.manual_seed(1337);
            Console.WriteLine($"Training-step benchmark: {card}");
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "batch {0} x T={1}; {2} measured steps per contender in {3} interleaved rounds after {4} warm-up steps; torch threads {5}; dropout {6}",
                config.Batch, time, steps, rounds, WarmupSteps, torch.get_num_threads(), config.Dropout));
            Console.WriteLine($"machine: {CpuModel()}, {Environment.ProcessorCount} logical cores; load average at start: {LoadAverage()}");

            using var generated = config.Create();
            using var manual = Build(card, config, fused: false);
            using var sdpa = Build(card, config, fused: true);
            CopyWeights(generated, manual);
            CopyWeights(generated, sdpa);

            using var ids = randint(0, card.Vocab, new long[] { config.Batch, time }, dtype: int64);
            using var targets = randint(0, card.Vocab, new long[] { config.Batch, time }, dtype: int64);

            CheckSameComputation(card, generated, manual, sdpa, ids, targets);

            double flopsPerStep = 3.0 * card.ForwardFlopsPerToken(time) * config.Batch * time;
            var contenders = new List<Contender>
            {
                TrainingContender("A generated (SDPA)", generated, () => generated.Loss(ids, targets), flopsPerStep),
                TrainingContender("B hand-written, manual attention", manual, () => manual.Loss(ids, targets), flopsPerStep),
                TrainingContender("C hand-written + SDPA", sdpa, () => sdpa.Loss(ids, targets), flopsPerStep),
            };
            using var ma = randn(1024, 1024);
            using var mb = randn(1024, 1024);
            var matmul = new Contender
            {
                Label = "torch.mm 1024^3 fp32 (ceiling)",
                FlopsPerStep = 2.0 * 1024 * 1024 * 1024,
                Step = () => { using var scope = NewDisposeScope(); mm(ma, mb); },
            };
            var all = contenders.Append(matmul).ToArray();

            foreach (var c in all)
                for (int i = 0; i < WarmupSteps; i++) c.Step();

            int perRound = (steps + rounds - 1) / rounds;
            int matmulPerRound = Math.Max(perRound, 10);
            var clock = new Stopwatch();
            long peakResident = NativeHeap.ResidentBytes();
            var wall = Stopwatch.StartNew();
            double busyBefore = BusyCpuSeconds();
            var ownBefore = Process.GetCurrentProcess().TotalProcessorTime;
            for (int round = 0; round < rounds; round++)
            {
                int remaining = steps - round * perRound;
                for (int j = 0; j < all.Length; j++)
                {
                    var c = all[(round + j) % all.Length];                     // rotate the order every round
                    int n = c == matmul ? matmulPerRound : Math.Min(perRound, remaining);
                    for (int i = 0; i < n; i++)
                    {
                        clock.Restart();
                        c.Step();
                        clock.Stop();
                        c.Milliseconds.Add(clock.Elapsed.TotalMilliseconds);
                    }
                    // Outside the timed steps: hand freed native memory back (glibc fragmentation otherwise grows the
                    // resident set by gigabytes for GPT-2 small, three models in one process) and note the peak.
                    peakResident = Math.Max(peakResident, NativeHeap.ResidentBytes());
                    NativeHeap.Trim();
                }
                Console.Error.Write($"\rround {round + 1}/{rounds} done");
            }
            Console.Error.WriteLine();
            wall.Stop();
            double own = (Process.GetCurrentProcess().TotalProcessorTime - ownBefore).TotalSeconds;
            double others = BusyCpuSeconds() - busyBefore - own;

            Report(all, contenders, matmul, config.Batch * time);
            Console.WriteLine($"load average at end: {LoadAverage()}; peak resident set seen between blocks {peakResident / (1 << 20):N0} MiB (malloc_trim after every block, outside the timing)");
            if (!double.IsNaN(others))
                Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                    "during the {0:F1} s of measurement this process used {1:F1} CPU-seconds and other processes {2:F1} ({3:F2} cores on average, from /proc/stat)",
                    wall.Elapsed.TotalSeconds, own, Math.Max(0, others), Math.Max(0, others) / wall.Elapsed.TotalSeconds));
            return 0;
        }

        private static HandWrittenGpt Build(ModelCard card, Config config, bool fused)
            => new(card.Vocab, card.Context, card.Hidden, card.Heads, card.Layers, card.Inner, config.Dropout, config.Epsilon, fused);

        private static Contender TrainingContender(string label, nn.Module model, Func<Tensor> loss, double flopsPerStep)
        {
            // Each tensor once (the tied matrix is listed twice by TorchSharp); same hyper-parameters for all.
            var parameters = LanguageModelTrainer.UniqueParameters(model).Select(p => p.Parameter).ToArray();
            var optimizer = optim.AdamW(parameters, lr: 3e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1);
            model.train();
            return new Contender
            {
                Label = label,
                FlopsPerStep = flopsPerStep,
                Step = () =>
                {
                    using var scope = NewDisposeScope();
                    optimizer.zero_grad();
                    var l = loss();
                    float value = l.item<float>();
                    if (!float.IsFinite(value)) throw new InvalidOperationException($"{label}: the loss became {value}.");
                    l.backward();
                    optimizer.step();
                },
            };
        }

        /// <summary>
        /// Copies by Hugging Face name ("transformer.h.0.attn.c_attn.weight" into "h.0.attn.c_attn.weight"). The generated
        /// Conv1D weights are [in, out], nn.Linear's are [out, in]: those are transposed on copy (by name, not by shape:
        /// attn.c_proj is square).
        /// </summary>
        private static void CopyWeights(CausalLanguageModel source, HandWrittenGpt target)
        {
            var sources = source.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
            var targets = target.named_parameters().ToList();
            if (targets.Count != sources.Count)
                throw new InvalidOperationException($"Weight copy: {sources.Count} generated parameters, {targets.Count} hand-written ones.");
            using var _ = no_grad();
            foreach (var (name, dst) in targets)
            {
                if (!sources.TryGetValue("transformer." + name, out var src))
                    throw new InvalidOperationException($"Weight copy: the generated model has no 'transformer.{name}'.");
                bool conv1D = name.EndsWith(".weight", StringComparison.Ordinal) && (name.Contains(".attn.c_", StringComparison.Ordinal) || name.Contains(".mlp.c_", StringComparison.Ordinal));
                if (conv1D)
                {
                    using var transposed = src.t();
                    Copy(dst, transposed, name);
                }
                else Copy(dst, src, name);
            }
        }

        private static void Copy(Tensor dst, Tensor src, string name)
        {
            if (!dst.shape.SequenceEqual(src.shape))
                throw new InvalidOperationException($"Weight copy of '{name}': shape [{string.Join(", ", src.shape)}] into [{string.Join(", ", dst.shape)}].");
            dst.copy_(src);
        }

        /// <summary>
        /// Same batch, same weights, dropout off (eval mode), autograd on: the losses must agree within 1e-4 and the
        /// gradients of the tied embedding (which collects the head, every layer and the input) within 1e-3 relative.
        /// </summary>
        private static void CheckSameComputation(ModelCard card, CausalLanguageModel generated, HandWrittenGpt manual, HandWrittenGpt sdpa, Tensor ids, Tensor targets)
        {
            var models = new (string Name, nn.Module Module, Func<Tensor> Loss, Func<Tensor> EmbeddingGrad)[]
            {
                ("A", generated, () => generated.Loss(ids, targets), () => generated.named_parameters().First(p => p.name == "transformer.wte.weight").parameter.grad!),
                ("B", manual, () => manual.Loss(ids, targets), () => manual.wte.weight!.grad!),
                ("C", sdpa, () => sdpa.Loss(ids, targets), () => sdpa.wte.weight!.grad!),
            };
            var losses = new float[models.Length];
            var grads = new Tensor[models.Length];
            for (int i = 0; i < models.Length; i++)
            {
                using var scope = NewDisposeScope();
                models[i].Module.eval();
                models[i].Module.zero_grad();
                var loss = models[i].Loss();
                losses[i] = loss.item<float>();
                loss.backward();
                grads[i] = models[i].EmbeddingGrad().detach().clone().MoveToOuterDisposeScope();
                models[i].Module.zero_grad();
                models[i].Module.train();
            }
            try
            {
                double scale = grads[0].abs().max().item<float>();
                Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                    "same-computation check (eval mode, same weights and batch): loss A {0:F6}, B {1:F6}, C {2:F6} (ln V = {3:F4}); wte grad max |A-B| {4:E2}, |A-C| {5:E2} (max |grad| {6:E2})",
                    losses[0], losses[1], losses[2], Math.Log(card.Vocab),
                    grads[0].sub(grads[1]).abs().max().item<float>(), grads[0].sub(grads[2]).abs().max().item<float>(), scale));
                for (int i = 1; i < models.Length; i++)
                {
                    if (!(Math.Abs(losses[i] - losses[0]) <= LossTolerance))
                        throw new InvalidOperationException(string.Format(CultureInfo.InvariantCulture,
                            "Benchmark aborted: model {0}'s loss {1:F6} differs from the generated model's {2:F6} by more than {3}; the contenders do not compute the same thing.",
                            models[i].Name, losses[i], losses[0], LossTolerance));
                    double diff = grads[0].sub(grads[i]).abs().max().item<float>();
                    if (!(diff <= GradientRelativeTolerance * scale))
                        throw new InvalidOperationException(string.Format(CultureInfo.InvariantCulture,
                            "Benchmark aborted: model {0}'s embedding gradient differs from the generated model's by {1:E2} (max |grad| {2:E2}).",
                            models[i].Name, diff, scale));
                }
            }
            finally
            {
                foreach (var g in grads) g.Dispose();
            }
        }

        private static void Report(Contender[] all, List<Contender> training, Contender matmul, long tokensPerStep)
        {
            static double Percentile(List<double> values, double q)
            {
                var sorted = values.OrderBy(v => v).ToArray();
                int rank = (int)Math.Ceiling(q * sorted.Length);                   // nearest-rank
                return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
            }

            double ceiling = matmul.FlopsPerStep / (Percentile(matmul.Milliseconds, 0.5) / 1000) / 1e9;
            double a = Percentile(training[0].Milliseconds, 0.5);
            var inv = CultureInfo.InvariantCulture;
            Console.WriteLine();
            Console.WriteLine("| contender | steps | median ms/step | p90 ms/step | tokens/s | GFLOP/s | % of mm ceiling | A / this (median) |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var c in all)
            {
                double median = Percentile(c.Milliseconds, 0.5), p90 = Percentile(c.Milliseconds, 0.9);
                double gflops = c.FlopsPerStep / (median / 1000) / 1e9;
                bool isTraining = c != matmul;
                Console.WriteLine(string.Format(inv, "| {0} | {1} | {2:F2} | {3:F2} | {4} | {5:F1} | {6:P0} | {7} |",
                    c.Label, c.Milliseconds.Count, median, p90,
                    isTraining ? (tokensPerStep / (median / 1000)).ToString("N0", inv) : "-",
                    gflops, gflops / ceiling,
                    isTraining ? (a / median).ToString("F3", inv) : "-"));
            }
            Console.WriteLine();
            Console.WriteLine(string.Format(inv,
                "A/B = {0:F3}, A/C = {1:F3} (median step time ratios; < 1 means the generated model is faster). GFLOP/s count 3 x ForwardFlopsPerToken(T) per token.",
                a / Percentile(training[1].Milliseconds, 0.5), a / Percentile(training[2].Milliseconds, 0.5)));
        }

        /// <summary>Busy CPU time of the whole machine (user + nice + system + irq + softirq + steal), NaN where /proc/stat is missing.</summary>
        private static double BusyCpuSeconds()
        {
            try
            {
                var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                long busy = 0;
                foreach (int i in new[] { 1, 2, 3, 6, 7, 8 }) busy += long.Parse(fields[i], CultureInfo.InvariantCulture);
                return busy / 100.0;                                           // USER_HZ is 100 on Linux
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
                return double.NaN;
            }
        }

        private static string CpuModel()
        {
            try
            {
                return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU";
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return "unknown CPU"; }
        }

        private static string LoadAverage()
        {
            try { return File.ReadAllText("/proc/loadavg").Trim(); }
            catch (IOException) { return "unknown"; }
            catch (UnauthorizedAccessException) { return "unknown"; }
        }

        private static Dictionary<string, string> ParseOptions(string[] args)
        {
            var values = new Dictionary<string, string>();
            for (int i = 0; i < args.Length; i++)
            {
                if (args[i] is not ("--steps" or "--model" or "--rounds") || i + 1 >= args.Length)
                    throw new ArgumentException($"bench: expected '--steps N', '--model kjv|small' or '--rounds R', got '{args[i]}'.");
                values[args[i]] = args[++i];
            }
            return values;
        }

        private static int Int(Dictionary<string, string> options, string name, int fallback)
            => !options.TryGetValue(name, out var v) ? fallback
                : int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n
                : throw new FormatException($"{name} expects an integer, got '{v}'.");
    }
}
