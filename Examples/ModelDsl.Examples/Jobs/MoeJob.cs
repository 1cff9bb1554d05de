using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using ModelDsl.Examples.Backends;
using ModelDsl.Ilgpu;
using ModelDsl.Ilgpu.Training;
using ModelDsl.Text;
using ModelDsl.TorchSharp;
using ModelDsl.TorchSharp.Training;
using ModelDsl.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.Examples.Jobs
{
    /// <summary>
    /// Mixture of experts against its dense twin: KjvGpt and KjvMoeGpt (the same model with 4 half-width experts, top-2)
    /// train on the same KJV batches for the same steps, at equal parameters per token. Prints both validation
    /// cross-entropies and each layer's expert load; saves both checkpoints, the loss plot and two expert-load plots.
    /// </summary>
    internal static class MoeJob
    {
        public const string Usage = """
              moe [options]              train KjvGpt and KjvMoeGpt (4 half-width experts, top-2) side by side on the KJV text
                --steps N                optimizer steps of each model (default 600)
                --batch N                sequences per step (default 16)
                --lr X                   peak learning rate (default 3e-3)
                --out DIR                where checkpoints and plots go (default ./out)
                --seed N                 seed for initialisation and batches (default 1337)
                --threads N              libtorch threads (default 1: the model's operations are small, and a second
                                         thread only waits when another program shares the cores)
            """ + "\n" + BackendOption.Usage;

        private const int ValidationBatches = 16;

        public static void Run(Options options)
        {
            TorchSharpRuntime.EnsureLoaded();
            var outDir = Directory.CreateDirectory(options.Get("--out", "out")).FullName;
            ulong seed = (ulong)options.Get("--seed", 1337);
            using var device = BackendOption.Open(options, "2 steps of one 32-character sequence per model");
            bool emulated = device is { IsEmulator: true };
            int steps = options.Get("--steps", emulated ? 2 : 600);

            var text = Corpus.KingJamesBible();
            var tokenizer = CharTokenizer.FromCorpus(text);
            var data = new TokenBatches(tokenizer.Encode(text), KjvGpt.Card.Vocab, validationFraction: 0.05);
            double unigram = Entropy.UnigramNats(data.TrainTokens.Span);
            var trainingOptions = new TrainingOptions
            {
                Steps = steps,
                BatchSize = options.Get("--batch", emulated ? 1 : 16),
                SequenceLength = emulated ? 32 : KjvGpt.Card.Context,
                LearningRate = options.Get("--lr", 3e-3),
                WarmupSteps = Math.Min(50, steps / 10),
                MinLearningRateRatio = 0.1,
                WeightDecay = 0.1,
                EvalEvery = Math.Max(1, steps / 12),
                EvalBatches = emulated ? 1 : 8,
                Seed = seed,
                Threads = options.Get("--threads", 1),
            };

            torch.manual_seed((long)seed);
            using var dense = KjvGpt.CreateTorchSharp();
            torch.manual_seed((long)seed);
            using var moe = KjvMoeGpt.CreateTorchSharp();
            PrintParameterArithmetic(dense, moe);

            Console.WriteLine();
            Console.WriteLine($"1/2  dense: {KjvGpt.Card.Name}, {steps} steps");
            var denseReport = Train(device, dense, d => KjvGpt.CreateIlgpu(d, seed), trainingOptions, data, Path.Combine(outDir, "kjv-moe-dense.ilgpu.safetensors"), _ => { });

            Console.WriteLine();
            Console.WriteLine($"2/2  mixture of experts: {KjvMoeGpt.Card.Name}, the same {steps} steps on the same batches (its training loss includes the load-balancing loss)");
            // Expert load is measured on one fixed validation batch at every evaluation.
            var probe = new LanguageModelData(data).Stream(DataSplit.Validation, trainingOptions with { BatchSize = 32 }, seed ^ 0x10AD, null).Next();
            var loads = new List<ExpertLoad>();
            var moeReport = Train(device, moe, d => KjvMoeGpt.CreateIlgpu(d, seed), trainingOptions, data, Path.Combine(outDir, "kjv-moe.ilgpu.safetensors"),
                step => loads.Add(MeasureLoad(moe, probe.Ids, step)));

            // The language-modelling loss alone, on the same held-out windows for both (the trainer's validation loss of
            // the MoE model includes its weighted load-balancing loss).
            double denseLoss = ValidationCrossEntropy(dense, data, trainingOptions);
            double moeLoss = ValidationCrossEntropy(moe, data, trainingOptions);
            double auxiliary = AuxiliaryLoss(moe, probe.Ids);

            Console.WriteLine();
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Expert load of {0} on {1:N0} validation tokens: each expert's share of the routing slots (tokens x top-{2}; balanced = {3:F2}):",
                KjvMoeGpt.Card.Name, probe.Ids.numel(), KjvMoeGpt.Card.TopK, 1.0 / KjvMoeGpt.Card.Experts));
            foreach (var load in new[] { loads[0], loads[^1] })
                foreach (var (layer, shares) in load.Shares)
                    Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "  step {0,4}  layer {1}: {2}", load.Step, layer,
                        string.Join("  ", shares.Select(s => s.ToString("F3", CultureInfo.InvariantCulture)))));

            var denseCheckpoint = Path.Combine(outDir, "kjv-moe-dense.safetensors");
            var moeCheckpoint = Path.Combine(outDir, "kjv-moe.safetensors");
            dense.SaveSafetensors(denseCheckpoint, Metadata(KjvGpt.Card.Name, steps, denseLoss));
            moe.SaveSafetensors(moeCheckpoint, Metadata(KjvMoeGpt.Card.Name, steps, moeLoss));
            tokenizer.Save(Path.Combine(outDir, "kjv-moe.tokenizer.json"));
            var lossPlot = Path.Combine(outDir, "kjv-moe-loss.png");
            LossPlot.Save(lossPlot, moeReport, new[] { new ReferenceLine($"{KjvGpt.Card.Name} (dense) validation", denseReport.FinalValidationLoss), new ReferenceLine("unigram entropy", unigram) });
            var loadPlot = Path.Combine(outDir, "kjv-moe-load.png");
            ExpertLoadPlot.SaveShares(loadPlot, loads[^1], $"{KjvMoeGpt.Card.Name}: expert load after {steps} steps");
            var loadTrainingPlot = Path.Combine(outDir, "kjv-moe-load-training.png");
            ExpertLoadPlot.SaveOverTraining(loadTrainingPlot, loads, $"{KjvMoeGpt.Card.Name}: busiest and idlest expert per layer");

            Console.WriteLine();
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Validation cross-entropy after {0} steps ({1} x {2} windows): dense {3} {4:F3}, mixture of experts {5} {6:F3} nats/char ({7:+0.000;-0.000}); " +
                "the MoE's weighted load-balancing loss adds {8:F4}. Training took {9:F0} s and {10:F0} s ({11} and {12} tokens/s).",
                steps, ValidationBatches, trainingOptions.BatchSize, KjvGpt.Card.Name, denseLoss, KjvMoeGpt.Card.Name, moeLoss, moeLoss - denseLoss, auxiliary,
                denseReport.TrainingTime.TotalSeconds, moeReport.TrainingTime.TotalSeconds, ConsoleTrainingView.Rate(denseReport.ItemsPerSecond), ConsoleTrainingView.Rate(moeReport.ItemsPerSecond)));
            Console.WriteLine($"Saved {denseCheckpoint}, {moeCheckpoint}, {lossPlot}, {loadPlot} and {loadTrainingPlot}.");
        }

        /// <summary>
        /// Trains <paramref name="model"/> with the TorchSharp trainer, or (with a device) its ILGPU twin from the same initial
        /// weights on the same batches, moving the weights back through <paramref name="weightsFile"/> at every evaluation
        /// (where <paramref name="atEvaluation"/> measures the TorchSharp model) and at the end.
        /// </summary>
        private static TrainingReport Train(IlgpuDevice? device, CausalLanguageModel model, Func<IlgpuDevice, IlgpuCausalLanguageModel> createIlgpu,
            TrainingOptions options, TokenBatches data, string weightsFile, Action<int> atEvaluation)
        {
            if (device is null)
            {
                using var trainer = new LanguageModelTrainer(model, options);
                return new ConsoleTrainingView().Run(view => trainer.Train(data, new EvaluationProbe(view, atEvaluation)));
            }
            using var ilgpu = IlgpuTwin.Create(model, () => createIlgpu(device), weightsFile);
            var ilgpuTrainer = new IlgpuLanguageModelTrainer(ilgpu, options);
            var report = new ConsoleTrainingView().Run(view => ilgpuTrainer.Train(data, new EvaluationProbe(view, step =>
            {
                IlgpuTwin.CopyBack(ilgpu, model, weightsFile);
                atEvaluation(step);
            })));
            IlgpuTwin.CopyBack(ilgpu, model, weightsFile);
            File.Delete(weightsFile);
            return report;
        }

        /// <summary>Both models' sizes, and why a token of the MoE model meets as many parameters as one of the dense model.</summary>
        private static void PrintParameterArithmetic(CausalLanguageModel dense, CausalLanguageModel moe)
        {
            var card = moe.Card;
            long expert = moe.named_parameters().Where(p => p.name.StartsWith("transformer.h.0.mlp.experts.0.", StringComparison.Ordinal)).Sum(p => p.parameter.numel());
            long router = moe.named_parameters().Where(p => p.name.StartsWith("transformer.h.0.mlp.gate.", StringComparison.Ordinal)).Sum(p => p.parameter.numel());
            long mlp = dense.named_parameters().Where(p => p.name.StartsWith("transformer.h.0.mlp.", StringComparison.Ordinal)).Sum(p => p.parameter.numel());
            long idle = (long)card.DecoderLayers * (card.Experts - card.TopK) * expert;
            Console.WriteLine(dense.Card);
            Console.WriteLine(card);
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Parameters per token: {0}'s MLP has {1:N0} per layer; {2}'s layer has a {3:N0}-weight router and {4} experts of {5:N0}, of which a token uses {6}: " +
                "{3:N0} + {6} x {5:N0} = {7:N0}. Of its {8:N0} parameters, {9} layers x {10} idle experts x {5:N0} = {11:N0} sit out each token: " +
                "{12:N0} active, against the dense model's {13:N0}.",
                dense.Card.Name, mlp, card.Name, router, card.Experts, expert, card.TopK, router + card.TopK * expert,
                card.ParameterCount, card.DecoderLayers, card.Experts - card.TopK, idle, card.ParameterCount - idle, dense.Card.ParameterCount));
        }

        /// <summary>Tokens per expert of each sparse layer on <paramref name="ids"/>, as shares, without gradients and in eval mode.</summary>
        private static ExpertLoad MeasureLoad(CausalLanguageModel model, Tensor ids, int step)
        {
            bool wasTraining = model.training;
            model.eval();
            try
            {
                using var scope = torch.NewDisposeScope();
                using var noGrad = torch.no_grad();
                var load = model.Forward(ids).ExpertLoad;
                return ExpertLoad.FromCounts(step, load.ToDictionary(l => l.Key, l => l.Value.data<long>().ToArray()));
            }
            finally
            {
                model.train(wasTraining);
            }
        }

        private static double AuxiliaryLoss(CausalLanguageModel model, Tensor ids)
        {
            model.eval();
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            return model.Forward(ids).AuxiliaryLoss?.item<float>() ?? 0;
        }

        /// <summary>Mean next-token cross-entropy (no auxiliary loss) over fixed validation windows, the same for every model.</summary>
        private static double ValidationCrossEntropy(CausalLanguageModel model, TokenBatches data, TrainingOptions options)
        {
            var stream = new LanguageModelData(data).Stream(DataSplit.Validation, options, options.Seed ^ 0xC0FFEE, null);
            model.eval();
            using var noGrad = torch.no_grad();
            double sum = 0;
            for (int i = 0; i < ValidationBatches; i++)
            {
                using var scope = torch.NewDisposeScope();
                var batch = stream.Next();
                var logits = model.Forward(batch.Ids).Logits;
                sum += nn.functional.cross_entropy(logits.view(-1, logits.shape[^1]), batch.Targets.view(-1)).item<float>();
            }
            return sum / ValidationBatches;
        }

        private static Dictionary<string, string> Metadata(string model, int steps, double loss) => new()
        {
            ["format"] = "pt",
            ["model"] = model,
            ["steps"] = steps.ToString(CultureInfo.InvariantCulture),
            ["validation_cross_entropy"] = loss.ToString("F4", CultureInfo.InvariantCulture),
        };

        /// <summary>Passes every event to the console view and, at each evaluation, lets <paramref name="measure"/> record the expert load.</summary>
        private sealed class EvaluationProbe(ITrainingObserver view, Action<int> measure) : ITrainingObserver
        {
            public void OnStart(TrainingStart start) => view.OnStart(start);

            public void OnStep(TrainingProgress progress) => view.OnStep(progress);

            public void OnEvaluation(EvaluationPoint evaluation)
            {
                measure(evaluation.Step);
                view.OnEvaluation(evaluation);
            }

            public void OnEnd(TrainingReport report) => view.OnEnd(report);
        }
    }
}
