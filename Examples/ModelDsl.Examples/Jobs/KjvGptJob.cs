using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using ModelDsl.Text;
using ModelDsl.TorchSharp;
using ModelDsl.TorchSharp.Training;
using ModelDsl.Training;

namespace ModelDsl.Examples.Jobs
{
    /// <summary>The main job: train KjvGpt on the embedded King James Bible, save checkpoint, tokenizer and plot, sample.</summary>
    internal static class KjvGptJob
    {
        public const string Usage = """
              train [options]            train KjvGpt on the embedded KJV text (the default command)
                --steps N                optimizer steps (default 1200)
                --batch N                sequences per step (default 16)
                --lr X                   peak learning rate (default 3e-3)
                --out DIR                where the checkpoint, tokenizer and plot go (default ./out)
                --seed N                 seed for initialisation, batches and sampling (default 1337)
                --resume true            continue from out/kjv-gpt.training.safetensors (written every 200 steps)
              sample [options]           generate from a saved checkpoint
                --out DIR                folder holding kjv-gpt.safetensors and kjv-gpt.tokenizer.json (default ./out)
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
            if (tokenizer.VocabSize > KjvGpt.Card.Vocab)
                throw new InvalidOperationException(
                    $"Model 'KjvGpt': the corpus has {tokenizer.VocabSize} distinct characters but Vocab is {KjvGpt.Card.Vocab}; raise Vocab in Models/GptModels.cs.");
            var tokens = tokenizer.Encode(text);
            var data = new TokenBatches(tokens, KjvGpt.Card.Vocab, validationFraction: 0.05);
            double unigram = Entropy.UnigramNats(data.TrainTokens.Span);

            Console.WriteLine(KjvGpt.Card);
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Corpus: King James Bible, Genesis to Ruth ({0:N0} characters, {1} distinct); unigram entropy {2:F3} nats/char ({3:F2} bits)",
                text.Length, tokenizer.VocabSize, unigram, Entropy.NatsToBits(unigram)));

            using var model = KjvGpt.CreateTorchSharp();
            var trainingOptions = new TrainingOptions
            {
                Steps = options.Get("--steps", 1200),
                BatchSize = options.Get("--batch", 16),
                SequenceLength = KjvGpt.Card.Context,
                LearningRate = options.Get("--lr", 3e-3),
                WarmupSteps = 50,
                MinLearningRateRatio = 0.1,
                WeightDecay = 0.1,
                EvalEvery = 200,
                EvalBatches = 8,
                Seed = seed,
            };
            // A training checkpoint every evaluation; the weights of the best validation loss beside it.
            string training = Path.Combine(outDir, "kjv-gpt.training.safetensors");
            using var trainer = new LanguageModelTrainer(model, trainingOptions)
            {
                Checkpoints = new TrainingCheckpoints(training, trainingOptions.EvalEvery, Path.Combine(outDir, "kjv-gpt.best.safetensors")),
            };
            if (options.Get("--resume", "false") == "true")
            {
                trainer.Resume(training);
                Console.WriteLine($"Resuming from {training}.");
            }
            var view = new ConsoleTrainingView();
            var report = view.Run(observer => trainer.Train(data, observer));

            var checkpoint = Path.Combine(outDir, "kjv-gpt.safetensors");
            model.SaveSafetensors(checkpoint, new System.Collections.Generic.Dictionary<string, string>
            {
                ["format"] = "pt",
                ["model"] = "KjvGpt",
                ["steps"] = trainingOptions.Steps.ToString(CultureInfo.InvariantCulture),
                ["validation_loss"] = report.FinalValidationLoss.ToString("F4", CultureInfo.InvariantCulture),
            });
            tokenizer.Save(Path.Combine(outDir, "kjv-gpt.tokenizer.json"));
            var plot = Path.Combine(outDir, "kjv-gpt-loss.png");
            LossPlot.Save(plot, report, new[] { new ReferenceLine("unigram entropy", unigram) });

            double final = report.FinalValidationLoss;
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Validation loss {0:F3} -> {1:F3} nats/char ({2:F2} bits/char, perplexity {3:F2}); unigram entropy {4:F3}: {5:P0} below it. {6:N0} tokens/s.",
                report.InitialValidationLoss, final, Entropy.NatsToBits(final), Entropy.Perplexity(final), unigram,
                1 - final / unigram, report.ItemsPerSecond));
            Console.WriteLine($"Saved {checkpoint}, its tokenizer, {plot}, the best-validation weights and the training checkpoint.");

            var prompt = "And God said";
            var sample = model.Generate(tokenizer.Encode(prompt), 300, new SamplingOptions(Temperature: 0.8f, TopP: 0.95f, Seed: (int)seed, Vocabulary: tokenizer.VocabSize));
            Console.WriteLine();
            Console.WriteLine("Sample (temperature 0.8, top-p 0.95):");
            Console.WriteLine(tokenizer.Decode(sample));
        }

        public static void Sample(Options options)
        {
            TorchSharpRuntime.EnsureLoaded();
            var outDir = options.Get("--out", "out");
            var tokenizer = CharTokenizer.Load(Path.Combine(outDir, "kjv-gpt.tokenizer.json"));
            using var model = KjvGpt.CreateTorchSharp();
            model.LoadSafetensors(Path.Combine(outDir, "kjv-gpt.safetensors"));
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
