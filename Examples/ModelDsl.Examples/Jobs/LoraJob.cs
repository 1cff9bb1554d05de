using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using ModelDsl.Examples.Backends;
using ModelDsl.Ilgpu;
using ModelDsl.Ilgpu.Training;
using ModelDsl.Text;
using ModelDsl.TorchSharp;
using ModelDsl.TorchSharp.Training;
using ModelDsl.Training;
using TorchSharp;

namespace ModelDsl.Examples.Jobs
{
    /// <summary>
    /// LoRA: a KjvGpt trained on Genesis to Deuteronomy is adapted to Joshua, Judges and Ruth by training rank-8 adapters
    /// on its attention projections (KjvLoraGpt) with every base weight frozen. Prints the trainable fraction (and GPT-2
    /// small's with the same settings), the loss on the new and the old text before and after; saves the adapters alone
    /// (PEFT's layout) and the merged model. With --backend ilgpu both trainings run there; the weights then move to the
    /// TorchSharp twin (through a checkpoint) for evaluation, the PEFT files and the merge.
    /// </summary>
    internal static class LoraJob
    {
        public const string Usage = """
              lora [options]             adapt a KJV GPT trained on Genesis-Deuteronomy to Joshua-Ruth with LoRA adapters
                --base FILE              start from this KjvGpt checkpoint instead of training one here (the main job's
                                         out/kjv-gpt.safetensors has seen Joshua-Ruth, so it would have little to learn)
                --base-steps N           steps of the base model on Genesis-Deuteronomy (default 600)
                --steps N                adaptation steps on Joshua-Ruth (default 300)
                --batch N                sequences per step (default 16)
                --lr X                   peak learning rate of the adapters (default 3e-3)
                --out DIR                where checkpoints, adapters and plots go (default ./out)
                --seed N                 seed for initialisation and batches (default 1337)
                --threads N              libtorch threads (default 1: the model's operations are small, and a second
                                         thread only waits when another program shares the cores)
            """ + "\n" + BackendOption.Usage;

        private const int EvaluationBatches = 16;

        public static void Run(Options options)
        {
            TorchSharpRuntime.EnsureLoaded();
            var outDir = Directory.CreateDirectory(options.Get("--out", "out")).FullName;
            ulong seed = (ulong)options.Get("--seed", 1337);
            using var device = BackendOption.Open(options, "2 steps of one 32-character sequence for the base and for the adapters");
            bool emulated = device is { IsEmulator: true };
            int steps = options.Get("--steps", emulated ? 2 : 300), baseSteps = options.Get("--base-steps", emulated ? 2 : 600);
            int batch = options.Get("--batch", emulated ? 1 : 16), threads = options.Get("--threads", 1), sequence = emulated ? 32 : KjvGpt.Card.Context;
            int evalBatches = emulated ? 1 : 8;

            var text = Corpus.KingJamesBible();
            var tokenizer = CharTokenizer.FromCorpus(text);
            var old = new TokenBatches(tokenizer.Encode(KjvBooks.Text(text, "Genesis", "Deuteronomy")), KjvGpt.Card.Vocab, validationFraction: 0.05);
            var @new = new TokenBatches(tokenizer.Encode(KjvBooks.Text(text, "Joshua", "Ruth")), KjvGpt.Card.Vocab, validationFraction: 0.1);
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Old text: Genesis to Deuteronomy, {0:N0} characters ({1:N0} held out, the end of Deuteronomy). New text: Joshua, Judges and Ruth, " +
                "{2:N0} characters ({3:N0} held out, the end of Judges and Ruth).",
                old.TrainTokens.Length + old.ValidationTokens.Length, old.ValidationTokens.Length,
                @new.TrainTokens.Length + @new.ValidationTokens.Length, @new.ValidationTokens.Length));

            // 1. The base model: trained here on the old text, or read from --base.
            string baseFile = options.Get("--base", "");
            if (baseFile.Length == 0)
            {
                baseFile = Path.Combine(outDir, "kjv-lora-base.safetensors");
                TrainBase(device, old, baseFile, TrainingOptionsFor(baseSteps, batch, sequence, evalBatches, 3e-3, seed, threads));
            }
            else if (!File.Exists(baseFile))
            {
                throw new FileNotFoundException($"--base: no checkpoint at '{baseFile}'.", baseFile);
            }

            // 2. The adapted model starts as the base model: adapters B = 0.
            torch.manual_seed((long)seed);
            using var model = KjvLoraGpt.CreateTorchSharp();
            model.Lora.LoadBase(baseFile);
            model.Lora.Freeze();
            var adaptation = TrainingOptionsFor(steps, batch, sequence, evalBatches, options.Get("--lr", 3e-3), seed, threads) with { WeightDecay = 0.0 };
            using var trainer = new LanguageModelTrainer(model, adaptation);
            PrintTrainableFractions(model, trainer.ParameterCount);

            double oldBefore = trainer.EvaluateLoss(old, DataSplit.Validation, EvaluationBatches, seed);
            double newBefore = trainer.EvaluateLoss(@new, DataSplit.Validation, EvaluationBatches, seed);
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Before adaptation: {0:F3} nats/char on the new text, {1:F3} on the old.", newBefore, oldBefore));

            Console.WriteLine();
            Console.WriteLine($"Adapting: {steps} steps on Joshua-Ruth, only lora_A and lora_B train");
            var report = device is null
                ? new ConsoleTrainingView().Run(observer => trainer.Train(@new, observer))
                : AdaptOnIlgpu(device, model, adaptation, @new, Path.Combine(outDir, "kjv-lora.ilgpu.safetensors"));
            double oldAfter = trainer.EvaluateLoss(old, DataSplit.Validation, EvaluationBatches, seed);
            double newAfter = trainer.EvaluateLoss(@new, DataSplit.Validation, EvaluationBatches, seed);

            // 3. The adapters alone, as PEFT saves them; then merged into the base weights, a plain KjvGpt checkpoint.
            var adapterDir = Path.Combine(outDir, "kjv-lora-adapter");
            model.Lora.SaveAdapters(adapterDir);
            model.Lora.Merge();
            var mergedFile = Path.Combine(outDir, "kjv-lora-merged.safetensors");
            model.Lora.SaveBase(mergedFile, new Dictionary<string, string>
            {
                ["format"] = "pt",
                ["model"] = KjvGpt.Card.Name,
                ["adapted_from"] = Path.GetFileName(baseFile),
                ["adaptation_steps"] = steps.ToString(CultureInfo.InvariantCulture),
            });
            tokenizer.Save(Path.Combine(outDir, "kjv-lora.tokenizer.json"));
            double mergedLoss;
            using (var merged = KjvGpt.CreateTorchSharp())
            using (var check = new LanguageModelTrainer(merged, adaptation))
            {
                merged.LoadSafetensors(mergedFile);
                mergedLoss = check.EvaluateLoss(@new, DataSplit.Validation, EvaluationBatches, seed);
            }
            var plot = Path.Combine(outDir, "kjv-lora-loss.png");
            LossPlot.Save(plot, report, new[] { new ReferenceLine("base model on the new text", newBefore) }, $"{KjvLoraGpt.Card.Name}: adapting to Joshua-Ruth");

            Console.WriteLine();
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "New text (Joshua-Ruth) validation loss {0:F3} -> {1:F3} nats/char ({2:+0.000;-0.000}) after {3} steps of {4:N0} adapter weights; " +
                "old text (Genesis-Deuteronomy) {5:F3} -> {6:F3} ({7:+0.000;-0.000}). The merged KjvGpt scores {8:F3} on the new text. Adaptation took {9:F0} s ({10} tokens/s).",
                newBefore, newAfter, newAfter - newBefore, steps, trainer.ParameterCount, oldBefore, oldAfter, oldAfter - oldBefore, mergedLoss,
                report.TrainingTime.TotalSeconds, ConsoleTrainingView.Rate(report.ItemsPerSecond)));
            Console.WriteLine($"Saved {adapterDir}{Path.DirectorySeparatorChar} ({LoraAdapters.WeightsFile}, {LoraAdapters.ConfigFile}), {mergedFile} and {plot}.");
        }

        /// <summary>
        /// The adapters' training on ILGPU: the TorchSharp model's weights (base and fresh adapters) move to KjvLoraGpt's ILGPU
        /// model through <paramref name="weightsFile"/>, its base is frozen there too, and the trained weights move back.
        /// </summary>
        private static TrainingReport AdaptOnIlgpu(IlgpuDevice device, CausalLanguageModel model, TrainingOptions options, TokenBatches data, string weightsFile)
        {
            using var ilgpu = IlgpuTwin.Create(model, () => KjvLoraGpt.CreateIlgpu(device, options.Seed), weightsFile);
            ilgpu.Parameters.FreezeBase();
            var report = new ConsoleTrainingView().Run(observer => new IlgpuLanguageModelTrainer(ilgpu, options).Train(data, observer));
            IlgpuTwin.CopyBack(ilgpu, model, weightsFile);
            File.Delete(weightsFile);
            return report;
        }

        private static TrainingOptions TrainingOptionsFor(int steps, int batch, int sequence, int evalBatches, double learningRate, ulong seed, int threads) => new()
        {
            Steps = steps,
            BatchSize = batch,
            SequenceLength = sequence,
            LearningRate = learningRate,
            WarmupSteps = Math.Min(50, steps / 10),
            MinLearningRateRatio = 0.1,
            WeightDecay = 0.1,
            EvalEvery = Math.Max(1, steps / 6),
            EvalBatches = evalBatches,
            Seed = seed,
            Threads = threads,
        };

        private static void TrainBase(IlgpuDevice? device, TokenBatches old, string file, TrainingOptions options)
        {
            Console.WriteLine();
            Console.WriteLine($"Base model: {KjvGpt.Card.Name}, {options.Steps} steps on Genesis-Deuteronomy");
            torch.manual_seed((long)options.Seed);
            using var model = KjvGpt.CreateTorchSharp();
            TrainingReport report;
            if (device is null)
            {
                using var trainer = new LanguageModelTrainer(model, options);
                report = new ConsoleTrainingView().Run(observer => trainer.Train(old, observer));
            }
            else
            {
                using var ilgpu = KjvGpt.CreateIlgpu(device, options.Seed);
                report = new ConsoleTrainingView().Run(observer => new IlgpuLanguageModelTrainer(ilgpu, options).Train(old, observer));
                IlgpuTwin.CopyBack(ilgpu, model, file);
            }
            model.SaveSafetensors(file, new Dictionary<string, string>
            {
                ["format"] = "pt",
                ["model"] = KjvGpt.Card.Name,
                ["text"] = "Genesis-Deuteronomy",
                ["steps"] = options.Steps.ToString(CultureInfo.InvariantCulture),
                ["validation_loss"] = report.FinalValidationLoss.ToString("F4", CultureInfo.InvariantCulture),
            });
            Console.WriteLine($"Saved {file}.");
        }

        /// <summary>What the adapters are of this model, and of GPT-2 small with the same settings (from the two cards).</summary>
        private static void PrintTrainableFractions(KjvLoraGpt.TorchSharpModel model, long trainable)
        {
            long total = KjvLoraGpt.Card.ParameterCount;
            long gpt2Adapters = Gpt2SmallLora.Card.ParameterCount - Gpt2Small.Card.ParameterCount;
            Console.WriteLine();
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "{0}: rank {1}, alpha {2}, on {3} projections (PEFT target_modules [{4}]): {5:N0} trainable of {6:N0} parameters ({7:P2}). " +
                "GPT-2 small with the same settings: {8:N0} of {9:N0} ({10:P3}).",
                KjvLoraGpt.Card.Name, model.Lora.Rank, model.Lora.Alpha, model.Lora.Count, string.Join(", ", model.Lora.TargetModules),
                trainable, total, (double)trainable / total, gpt2Adapters, Gpt2SmallLora.Card.ParameterCount, (double)gpt2Adapters / Gpt2SmallLora.Card.ParameterCount));
        }
    }
}
