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

namespace ModelDsl.Examples.Jobs
{
    /// <summary>
    /// The main job: train KjvGpt (or, with --model mistral, the same size in Mistral's layout) on the embedded King James
    /// Bible, save checkpoint, tokenizer and plot, sample.
    /// </summary>
    internal static class KjvGptJob
    {
        /// <summary>A declaration the job trains: its card, its two backends' factories and its files' prefix in the output folder.</summary>
        private sealed record ModelChoice(ModelCard Card, Func<CausalLanguageModel> CreateTorchSharp, Func<IlgpuDevice, ulong, IlgpuCausalLanguageModel> CreateIlgpu, string Files);

        private static readonly Dictionary<string, ModelChoice> Models = new(StringComparer.Ordinal)
        {
            ["gpt"] = new(KjvGpt.Card, () => KjvGpt.CreateTorchSharp(), (device, seed) => KjvGpt.CreateIlgpu(device, seed), "kjv-gpt"),
            ["mistral"] = new(KjvMistral.Card, () => KjvMistral.CreateTorchSharp(), (device, seed) => KjvMistral.CreateIlgpu(device, seed), "kjv-mistral"),
        };

        private static ModelChoice Choose(Options options)
        {
            string name = options.Get("--model", "gpt");
            return Models.TryGetValue(name, out var choice) ? choice
                : throw new ArgumentException($"--model is {string.Join(" or ", Models.Keys)}, not '{name}'.");
        }

        public const string Usage = """
              train [options]            train KjvGpt on the embedded KJV text (the default command)
                --model NAME             gpt (KjvGpt: GPT-2's layout, the default) or mistral (KjvMistral: Mistral's
                                         layout at the same size; files out/kjv-mistral.*)
                --steps N                optimizer steps (default 1200)
                --batch N                sequences per step (default 16)
                --lr X                   peak learning rate (default 3e-3)
                --out DIR                where the checkpoint, tokenizer and plot go (default ./out)
                --seed N                 seed for initialisation, batches and sampling (default 1337)
                --resume true            continue from out/kjv-gpt.training.safetensors (written every 200 steps)
            """ + "\n" + BackendOption.Usage + "\n" + """
              sample [options]           generate from a saved checkpoint
                --out DIR                folder holding kjv-gpt.safetensors and kjv-gpt.tokenizer.json (default ./out)
                --model NAME             gpt or mistral (reads kjv-mistral.*), as trained
                --prompt TEXT            (default "And God said")
                --tokens N               characters to generate (default 400)
                --temperature X --top-k N --top-p X --seed N
            """;

        public static void Train(Options options)
        {
            TorchSharpRuntime.EnsureLoaded();
            var outDir = Directory.CreateDirectory(options.Get("--out", "out")).FullName;
            ulong seed = (ulong)options.Get("--seed", 1337);
            global::TorchSharp.torch.manual_seed((long)seed);

            var text = Corpus.KingJamesBible();
            var tokenizer = CharTokenizer.FromCorpus(text);
            var choice = Choose(options);
            var card = choice.Card;
            if (tokenizer.VocabSize > card.Vocab)
                throw new InvalidOperationException(
                    $"Model '{card.Name}': the corpus has {tokenizer.VocabSize} distinct characters but Vocab is {card.Vocab}; raise Vocab in Models/GptModels.cs.");
            var tokens = tokenizer.Encode(text);
            var data = new TokenBatches(tokens, card.Vocab, validationFraction: 0.05);
            double unigram = Entropy.UnigramNats(data.TrainTokens.Span);

            Console.WriteLine(card);
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Corpus: King James Bible, Genesis to Ruth ({0:N0} characters, {1} distinct); unigram entropy {2:F3} nats/char ({3:F2} bits)",
                text.Length, tokenizer.VocabSize, unigram, Entropy.NatsToBits(unigram)));

            using var device = BackendOption.Open(options, "2 steps of one 32-character sequence (about half a minute a step)");
            bool emulated = device is { IsEmulator: true };
            string backend = device is null ? "torchsharp" : "ilgpu";

            var trainingOptions = new TrainingOptions
            {
                Steps = options.Get("--steps", emulated ? 2 : 1200),
                BatchSize = options.Get("--batch", emulated ? 1 : 16),
                SequenceLength = emulated ? 32 : card.Context,
                LearningRate = options.Get("--lr", 3e-3),
                WarmupSteps = 50,
                MinLearningRateRatio = 0.1,
                WeightDecay = 0.1,
                EvalEvery = 200,
                EvalBatches = emulated ? 1 : 8,
                Seed = seed,
            };
            var checkpoint = Path.Combine(outDir, choice.Files + ".safetensors");
            var metadata = new Dictionary<string, string>
            {
                ["format"] = "pt",
                ["model"] = card.Name,
                ["backend"] = backend,
                ["steps"] = trainingOptions.Steps.ToString(CultureInfo.InvariantCulture),
            };
            var report = device is null
                ? TrainOnTorchSharp(choice, options, trainingOptions, data, outDir, checkpoint, metadata)
                : TrainOnIlgpu(choice, device, trainingOptions, data, checkpoint, metadata);

            tokenizer.Save(Path.Combine(outDir, choice.Files + ".tokenizer.json"));
            var plot = Path.Combine(outDir, choice.Files + "-loss.png");
            LossPlot.Save(plot, report, new[] { new ReferenceLine("unigram entropy", unigram) });

            double final = report.FinalValidationLoss;
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Validation loss {0:F3} -> {1:F3} nats/char ({2:F2} bits/char, perplexity {3:F2}); unigram entropy {4:F3}: {5:P0} {6} it. {7} tokens/s.",
                report.InitialValidationLoss, final, Entropy.NatsToBits(final), Entropy.Perplexity(final), unigram,
                Math.Abs(1 - final / unigram), final <= unigram ? "below" : "still above", ConsoleTrainingView.Rate(report.ItemsPerSecond)));
            Console.WriteLine($"Saved {checkpoint}, its tokenizer and {plot}.");

            // The checkpoint has Hugging Face names on either backend: sampling reads it into the TorchSharp model.
            using var sampler = choice.CreateTorchSharp();
            sampler.LoadSafetensors(checkpoint);
            var prompt = "And God said";
            var sample = sampler.Generate(tokenizer.Encode(prompt), 300, new SamplingOptions(Temperature: 0.8f, TopP: 0.95f, Seed: (int)seed, Vocabulary: tokenizer.VocabSize));
            Console.WriteLine();
            Console.WriteLine("Sample (temperature 0.8, top-p 0.95):");
            Console.WriteLine(tokenizer.Decode(sample));
        }

        private static TrainingReport TrainOnTorchSharp(ModelChoice choice, Options options, TrainingOptions trainingOptions, TokenBatches data, string outDir,
            string checkpoint, Dictionary<string, string> metadata)
        {
            using var model = choice.CreateTorchSharp();
            // A training checkpoint every evaluation; the weights of the best validation loss beside it.
            string training = Path.Combine(outDir, choice.Files + ".training.safetensors");
            using var trainer = new LanguageModelTrainer(model, trainingOptions)
            {
                Checkpoints = new TrainingCheckpoints(training, trainingOptions.EvalEvery, Path.Combine(outDir, choice.Files + ".best.safetensors")),
            };
            if (options.Get("--resume", "false") == "true")
            {
                trainer.Resume(training);
                Console.WriteLine($"Resuming from {training}.");
            }
            var view = new ConsoleTrainingView();
            var report = view.Run(observer => trainer.Train(data, observer));
            metadata["validation_loss"] = report.FinalValidationLoss.ToString("F4", CultureInfo.InvariantCulture);
            model.SaveSafetensors(checkpoint, metadata);
            return report;
        }

        /// <summary>The same recipe on ILGPU: its trainer takes the same options and reports to the same view.</summary>
        private static TrainingReport TrainOnIlgpu(ModelChoice choice, IlgpuDevice device, TrainingOptions trainingOptions, TokenBatches data,
            string checkpoint, Dictionary<string, string> metadata)
        {
            using var model = choice.CreateIlgpu(device, trainingOptions.Seed);
            var trainer = new IlgpuLanguageModelTrainer(model, trainingOptions);
            var report = new ConsoleTrainingView().Run(observer => trainer.Train(data, observer));
            metadata["validation_loss"] = report.FinalValidationLoss.ToString("F4", CultureInfo.InvariantCulture);
            model.SaveSafetensors(checkpoint, metadata);
            return report;
        }

        public static void Sample(Options options)
        {
            TorchSharpRuntime.EnsureLoaded();
            var outDir = options.Get("--out", "out");
            var choice = Choose(options);
            var tokenizer = CharTokenizer.Load(Path.Combine(outDir, choice.Files + ".tokenizer.json"));
            using var model = choice.CreateTorchSharp();
            model.LoadSafetensors(Path.Combine(outDir, choice.Files + ".safetensors"));
            var sampling = new SamplingOptions(
                Temperature: (float)options.Get("--temperature", 0.8),
                TopK: options.Get("--top-k", 0),
                TopP: (float)options.Get("--top-p", 0.95),
                Seed: options.Get("--seed", 1337),
                Vocabulary: tokenizer.VocabSize);
            var ids = model.Generate(tokenizer.Encode(options.Get("--prompt", "And God said")), options.Get("--tokens", 400), sampling);
            Console.WriteLine(tokenizer.Decode(ids));
        }
    }
}
