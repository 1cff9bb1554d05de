using System;
using System.Globalization;
using System.IO;
using System.Linq;
using ModelDsl.Checkpoints;
using ModelDsl.Examples;
using ModelDsl.Text;
using ModelDsl.TorchSharp;
using ModelDsl.TorchSharp.Training;
using ModelDsl.Training;

// The main job: train the declared KjvGpt on the King James Bible (embedded), save a checkpoint and a loss
// plot, and print a sample. Run with no arguments for the embedded default; `help` lists the options.
return ExampleProgram.Run(args);

internal static class ExampleProgram
{
    private const string Usage = """
        ModelDsl examples

          (no arguments)             train KjvGpt on the embedded KJV text with the default settings
          train [options]            same, with options:
            --steps N                optimizer steps (default 1200)
            --batch N                sequences per step (default 16)
            --lr X                   peak learning rate (default 3e-3)
            --out DIR                where the checkpoint, tokenizer and plot go (default ./out)
            --seed N                 seed for initialisation, batches and sampling (default 1337)
          sample [options]           generate from a saved checkpoint
            --out DIR                folder holding kjv-gpt.safetensors and kjv-gpt.tokenizer.json (default ./out)
            --prompt TEXT            (default "And God said")
            --tokens N               characters to generate (default 400)
            --temperature X --top-k N --top-p X --seed N
          inspect                    print the compile-time model cards of the declared models
          bench [--steps N] [--model kjv|small] [--rounds R]   time a training step: generated vs hand-written TorchSharp GPT
        """;

    public static int Run(string[] args)
    {
        try
        {
            var command = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : "train";
            var options = new Options(args.SkipWhile(a => !a.StartsWith("--", StringComparison.Ordinal)).ToArray());
            switch (command)
            {
                case "train": Train(options); return 0;
                case "sample": Sample(options); return 0;
                case "inspect": Inspect(); return 0;
                case "bench": return ModelDsl.Examples.Benchmarks.TrainingStepBenchmark.Run(args[1..]);
                case "help" or "-h" or "--help": Console.WriteLine(Usage); return 0;
                default: Console.Error.WriteLine($"Unknown command '{command}'.\n\n{Usage}"); return 2;
            }
        }
        catch (Exception e) when (e is ArgumentException or FormatException or FileNotFoundException or SafetensorsException or InvalidOperationException)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return 1;
        }
    }

    private static void Train(Options options)
    {
        TorchSharpRuntime.EnsureLoaded();
        var outDir = Directory.CreateDirectory(options.Get("--out", "out")).FullName;
        ulong seed = (ulong)options.Get("--seed", 1337);
        global::TorchSharp.torch.manual_seed((long)seed);

        var text = Corpus.KingJamesBible();
        var tokenizer = CharTokenizer.FromCorpus(text);
        if (tokenizer.VocabSize > KjvGpt.Card.Vocab)
            throw new InvalidOperationException(
                $"Model 'KjvGpt': the corpus has {tokenizer.VocabSize} distinct characters but Vocab is {KjvGpt.Card.Vocab}; raise Vocab in Models.cs.");
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
        using var trainer = new LanguageModelTrainer(model, trainingOptions);
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
        Console.WriteLine($"Saved {checkpoint}, its tokenizer and {plot}.");

        var prompt = "And God said";
        var sample = model.Generate(tokenizer.Encode(prompt), 300, new SamplingOptions(Temperature: 0.8f, TopP: 0.95f, Seed: (int)seed, Vocabulary: tokenizer.VocabSize));
        Console.WriteLine();
        Console.WriteLine("Sample (temperature 0.8, top-p 0.95):");
        Console.WriteLine(tokenizer.Decode(sample));
    }

    private static void Sample(Options options)
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

    private static void Inspect()
    {
        foreach (var card in new[] { KjvGpt.Card, Gpt2Small.Card })
        {
            Console.WriteLine(card);
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "  forward FLOPs/token at T={0}: {1:N0}; a training step costs about 3x that", card.Context, card.ForwardFlopsPerToken(card.Context)));
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "  training memory at batch 16 x {0}: {1:N1} MiB of activations kept for the backward pass, {2:N1} MiB of weights, gradients and AdamW moments",
                card.Context, card.ActivationBytes(16, card.Context) / 1048576.0, 16.0 * card.ParameterCount / 1048576.0));
            foreach (var term in card.ActivationByteTerms.OrderByDescending(t => t.At(16, card.Context, card.Context)).Take(5))
                Console.WriteLine("    " + term);
        }
    }

    /// <summary>"--name value" pairs with typed, culture-invariant parsing and errors that name the option.</summary>
    private sealed class Options
    {
        private readonly System.Collections.Generic.Dictionary<string, string> values = new();

        public Options(string[] args)
        {
            for (int i = 0; i < args.Length; i++)
            {
                if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
                    throw new ArgumentException($"Expected '--option value', got '{args[i]}'. Run with 'help' for the options.");
                values[args[i]] = args[++i];
            }
        }

        public string Get(string name, string fallback) => values.TryGetValue(name, out var v) ? v : fallback;

        public int Get(string name, int fallback)
            => values.TryGetValue(name, out var v)
                ? int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : throw new FormatException($"{name} expects an integer, got '{v}'.")
                : fallback;

        public double Get(string name, double fallback)
            => values.TryGetValue(name, out var v)
                ? double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) ? x : throw new FormatException($"{name} expects a number, got '{v}'.")
                : fallback;
    }
}

/// <summary>The training text, embedded in the program so the main job needs no files or downloads.</summary>
internal static class Corpus
{
    public static string KingJamesBible()
    {
        using var stream = typeof(Corpus).Assembly.GetManifestResourceStream("ModelDsl.Examples.Data.kjv.txt")
            ?? throw new InvalidOperationException("The embedded corpus ModelDsl.Examples.Data.kjv.txt is missing from the build.");
        using var reader = new StreamReader(stream, System.Text.Encoding.UTF8);
        return reader.ReadToEnd();
    }
}
