using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using ModelDsl.Examples.Backends;
using ModelDsl.Examples.Tasks;
using ModelDsl.TorchSharp;
using ModelDsl.TorchSharp.Training;
using ModelDsl.Training;

namespace ModelDsl.Examples.Jobs
{
    /// <summary>
    /// The T5 example: train ReverseWordsT5 to write a KJV verse fragment with its words in reverse order, then measure
    /// exact-match accuracy on held-out fragments with greedy decoding and beam search; saves checkpoint, tokenizer and
    /// loss plot.
    /// </summary>
    internal static class T5Job
    {
        public const string Usage = """
              t5 [options]               train ReverseWordsT5 to reverse the words of KJV verse fragments (word-level T5)
                --steps N                optimizer steps (default 1000)
                --batch N                fragments per step (default 128)
                --lr X                   peak learning rate (default 3e-3)
                --test N                 held-out fragments for the exact-match accuracy (default 500)
                --beams N                beam size for the beam-search accuracy (default 4)
                --out DIR                where the checkpoint, tokenizer and plot go (default ./out)
                --seed N                 seed for initialisation and batches (default 1337)
                --threads N              libtorch threads (default 1: this model's operations are small, and a second
                                         thread only waits when another program shares the cores)
            """ + "\n" + BackendOption.Usage;

        public static int Run(Options options)
        {
            TorchSharpRuntime.EnsureLoaded();
            var outDir = Directory.CreateDirectory(options.Get("--out", "out")).FullName;
            ulong seed = (ulong)options.Get("--seed", 1337);
            int testCount = options.Get("--test", 500), beams = options.Get("--beams", 4);
            global::TorchSharp.torch.manual_seed((long)seed);

            var text = Corpus.KingJamesBible();
            var task = new ReversedWords(text, vocabularySize: ReverseWordsT5.Card.Vocab - WordTokenizer.FirstWord);
            var tokenizer = new WordTokenizer(task.Vocabulary);
            (int[], int[])[] Encoded(IEnumerable<TextPair> pairs) => pairs.Select(p => (tokenizer.Encode(p.Source, end: true), tokenizer.Encode(p.Target))).ToArray();
            var data = new SequenceToSequenceData(Encoded(task.Train), Encoded(task.Validation),
                WordTokenizer.Pad, WordTokenizer.Pad, WordTokenizer.End);
            var test = Sample(task.Test, testCount, seed);

            Console.WriteLine(ReverseWordsT5.Card);
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Task: reverse the words of KJV verse fragments of {0}-{1} words from the {2:N0} most frequent, e.g. \"{3}\" -> \"{4}\"; " +
                "{5:N0} training, {6:N0} validation and {7:N0} test fragments from disjoint verses, no held-out text seen in training.",
                task.MinWords, task.MaxWords, task.Vocabulary.Count, task.Train[0].Source, task.Train[0].Target,
                task.Train.Count, task.Validation.Count, task.Test.Count));

            using var device = BackendOption.Open(options, "2 steps of 4 fragments, then 20 test fragments decoded on TorchSharp from those weights");
            bool emulated = device is { IsEmulator: true };
            if (emulated) test = Sample(task.Test, options.Get("--test", 20), seed);
            using var model = ReverseWordsT5.CreateTorchSharp();
            var trainingOptions = new TrainingOptions
            {
                Steps = options.Get("--steps", emulated ? 2 : 1000),
                BatchSize = options.Get("--batch", emulated ? 4 : 128),
                SequenceLength = ReverseWordsT5.Card.Context,
                LearningRate = options.Get("--lr", 3e-3),
                WarmupSteps = 50,
                MinLearningRateRatio = 0.05,
                WeightDecay = 0.01,
                EvalEvery = 100,
                EvalBatches = emulated ? 1 : 8,
                Seed = seed,
                Threads = options.Get("--threads", 1),
            };
            var checkpoint = Path.Combine(outDir, "reverse-words-t5.safetensors");
            // On ILGPU the weights come back for decoding: the ILGPU backend has no decoding cache yet.
            var report = TaskTraining.Train(device, model, trainingOptions, data, d => ReverseWordsT5.CreateIlgpu(d, seed), (t5, b, train) =>
            {
                int batch = (int)b.Source.shape[0], sourceTime = (int)b.Source.shape[1], time = (int)b.DecoderInput.shape[1];
                var (source, ids, targets) = (HostArrays.Ints(b.Source), HostArrays.Ints(b.DecoderInput), HostArrays.Ints(b.Targets));
                var mask = b.SourceMask is null ? null : HostArrays.Bools(b.SourceMask);
                return train ? t5.ForwardBackward(source, ids, targets, batch, sourceTime, time, mask)
                    : t5.Loss(source, ids, targets, batch, sourceTime, time, mask);
            }, checkpoint);

            model.SaveSafetensors(checkpoint, new Dictionary<string, string>
            {
                ["format"] = "pt",
                ["model"] = "ReverseWordsT5",
                ["backend"] = device is null ? "torchsharp" : "ilgpu",
                ["steps"] = trainingOptions.Steps.ToString(CultureInfo.InvariantCulture),
                ["validation_loss"] = report.FinalValidationLoss.ToString("F4", CultureInfo.InvariantCulture),
            });
            tokenizer.Save(Path.Combine(outDir, "reverse-words-t5.tokenizer.json"));
            var plot = Path.Combine(outDir, "reverse-words-t5-loss.png");
            LossPlot.Save(plot, report);
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Validation loss {0:F3} -> {1:F3} nats/token after {2} steps ({3} fragments/s). Saved {4}, its tokenizer and {5}.",
                report.InitialValidationLoss, report.FinalValidationLoss, trainingOptions.Steps, ConsoleTrainingView.Rate(report.ItemsPerSecond), checkpoint, plot));

            var greedy = Evaluate(model, tokenizer, data, test, new DecodingOptions(ReverseWordsT5.Card.Context), "greedy");
            var beam = Evaluate(model, tokenizer, data, test, new DecodingOptions(ReverseWordsT5.Card.Context, BeamSize: beams), $"beam search ({beams} beams)");
            Console.WriteLine();
            Console.WriteLine("Held-out examples (beam search):");
            foreach (var (pair, output) in test.Zip(beam.Outputs).Take(8))
                Console.WriteLine($"  {(output == pair.Target ? "ok   " : "WRONG")} {pair.Source}  ->  {output}");
            foreach (var (pair, output) in test.Zip(beam.Outputs).Where(p => p.Second != p.First.Target).Take(3))
                Console.WriteLine($"  wrong: {pair.Source}  ->  {output}  (expected {pair.Target})");
            Console.WriteLine();
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Exact match on {0} held-out fragments: greedy {1:P1}, beam search ({2} beams) {3:P1}.", test.Length, greedy.Accuracy, beams, beam.Accuracy));
            return 0;
        }

        /// <summary>A seeded sample of <paramref name="count"/> pairs (all of them when there are fewer).</summary>
        private static TextPair[] Sample(IReadOnlyList<TextPair> pairs, int count, ulong seed)
        {
            if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "--test must be at least 1.");
            var random = new Random(unchecked((int)seed));
            return pairs.OrderBy(_ => random.Next()).Take(count).ToArray();
        }

        /// <summary>Decodes every source in batches and counts outputs equal to the target, character for character.</summary>
        private static (double Accuracy, string[] Outputs) Evaluate(SequenceToSequenceModel model, WordTokenizer tokenizer,
            SequenceToSequenceData data, TextPair[] pairs, DecodingOptions decoding, string name)
        {
            const int batch = 100;
            var clock = Stopwatch.StartNew();
            var outputs = new List<string>(pairs.Length);
            for (int start = 0; start < pairs.Length; start += batch)
            {
                using var scope = global::TorchSharp.torch.NewDisposeScope();
                var (source, mask) = data.PaddedSources(pairs.Skip(start).Take(batch).Select(p => tokenizer.Encode(p.Source, end: true)).ToArray(), model.Device);
                outputs.AddRange(model.Generate(source, mask, decoding).Select(d => tokenizer.Decode(d.Tokens)));
            }
            double accuracy = pairs.Zip(outputs).Count(p => p.First.Target == p.Second) / (double)pairs.Length;
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0}: {1:P1} exact ({2:F1} s)", name, accuracy, clock.Elapsed.TotalSeconds));
            return (accuracy, outputs.ToArray());
        }
    }
}
