using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using ModelDsl.Examples.Backends;
using ModelDsl.Ilgpu;
using ModelDsl.Text;
using ModelDsl.TorchSharp;
using ModelDsl.TorchSharp.Training;
using ModelDsl.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.Examples.Jobs
{
    /// <summary>
    /// BERT on the embedded KJV excerpt: masked-language-model pre-training of <see cref="KjvBert"/> on the training
    /// verses, then the book of a verse (eight classes) with <see cref="KjvBertBooks"/>, once fine-tuned from the MLM
    /// checkpoint and once from scratch with the same steps, seed and batches. Reports held-out accuracies against
    /// the majority-class baseline; saves both checkpoints, the tokenizer and the loss plots.
    /// </summary>
    internal static class KjvBertJob
    {
        public const string Usage = """
              bert [options]             pre-train KjvBert (masked LM) on the KJV verses, then classify verses by book:
                                         fine-tuned from the MLM checkpoint vs from scratch
                --steps N                masked-LM pre-training steps (default 2000)
                --tune-steps N           classification steps, for each of the two classifiers (default 500)
                --batch N                sequences per step (default 32)
                --lr X                   pre-training peak learning rate (default 3e-3)
                --tune-lr X              classification peak learning rate (default 1e-3)
                --threads N              libtorch threads (default 1: faster here, see docs/families/bert.md)
                --out DIR                where checkpoints, tokenizer and plots go (default ./out)
                --seed N                 seed for initialisation, batches and masks (default 1337)
            """ + "\n" + BackendOption.Usage;

        private const int Classes = 8;

        public static void Run(Options options)
        {
            TorchSharpRuntime.EnsureLoaded();
            var outDir = Directory.CreateDirectory(options.Get("--out", "out")).FullName;
            ulong seed = (ulong)options.Get("--seed", 1337);
            using var device = BackendOption.Open(options, "2 steps of 4 pieces per phase, evaluated on 1 batch, on 24-character pieces");
            bool emulated = device is { IsEmulator: true };
            int batch = options.Get("--batch", emulated ? 4 : 32);

            var text = Corpus.KingJamesBible();
            var (trainVerses, heldOutVerses) = KjvBooks.Split(KjvBooks.Label(text));
            var tokenizer = BertCharTokenizer.FromCorpus(text);
            if (tokenizer.VocabSize > KjvBert.Card.Vocab)
                throw new InvalidOperationException(
                    $"Model 'KjvBert': the tokenizer has {tokenizer.VocabSize} ids (4 special tokens and {tokenizer.Characters.VocabSize} characters) but Vocab is {KjvBert.Card.Vocab}; raise Vocab in Models/BertModels.cs.");
            // Whole verses, in pieces that fit the context ([CLS] piece [SEP]), so no text is cut away.
            int context = emulated ? 24 : KjvBert.Card.Context;
            var train = Pieces(trainVerses, tokenizer, context);
            var heldOut = Pieces(heldOutVerses, tokenizer, context);

            Console.WriteLine(KjvBert.Card);
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Corpus: King James Bible, Genesis to Ruth: {0:N0} verses, {1:N0} for training and {2:N0} held out (every fifth passage of {3} verses in each book), " +
                "in {4:N0} and {5:N0} pieces of at most {6} characters; {7} ids ({8} characters + [PAD] [CLS] [SEP] [MASK]).",
                trainVerses.Length + heldOutVerses.Length, trainVerses.Length, heldOutVerses.Length, KjvBooks.PassageVerses,
                train.Sequences.Length, heldOut.Sequences.Length, context - 2, tokenizer.VocabSize, tokenizer.Characters.VocabSize));

            // 1. Masked-language-model pre-training on the training verses only: the held-out verses stay unseen.
            var specials = Enumerable.Range(0, BertCharTokenizer.SpecialCount).ToArray();
            var mlmData = new MaskedLanguageData(train.Sequences, heldOut.Sequences, tokenizer.VocabSize, BertCharTokenizer.Pad, BertCharTokenizer.Mask, specials);
            double unigram = Entropy.UnigramNats(train.Sequences.SelectMany(s => s.Where(id => !BertCharTokenizer.IsSpecial(id))).ToArray());
            var mlmOptions = new TrainingOptions
            {
                Steps = options.Get("--steps", emulated ? 2 : 2000),
                BatchSize = batch,
                SequenceLength = context,
                LearningRate = options.Get("--lr", 3e-3),
                WarmupSteps = 50,
                WeightDecay = 0.01,
                Beta2 = 0.98,
                EvalEvery = 250,
                EvalBatches = emulated ? 1 : 8,
                Seed = seed,
                // With libtorch's default two threads on the shared two-core machine, each op waited for its other
                // thread: 53 sequences/s against 378 with one (docs/families/bert.md).
                Threads = options.Get("--threads", 1),
            };
            torch.manual_seed((long)seed);
            using var mlm = KjvBert.CreateTorchSharp();
            var mlmCheckpoint = Path.Combine(outDir, "kjv-bert-mlm.safetensors");
            var mlmReport = TaskTraining.Train(device, mlm, mlmOptions, mlmData, d => KjvBert.CreateIlgpu(d, seed),
                (bert, b, train) => Encoder(bert, b.Ids, b.Targets, b.Segments, b.Mask, train), mlmCheckpoint);
            double maskedAccuracy = MaskedTokenAccuracy(mlm, mlmData, mlmOptions, seed);
            mlm.SaveSafetensors(mlmCheckpoint, Metadata("KjvBert", mlmOptions.Steps, "validation_loss", mlmReport.FinalValidationLoss));
            tokenizer.Save(Path.Combine(outDir, "kjv-bert.tokenizer.json"));
            LossPlot.Save(Path.Combine(outDir, "kjv-bert-mlm-loss.png"), mlmReport, new[] { new ReferenceLine("unigram entropy", unigram) },
                "KjvBert masked-LM loss (nats per masked character)");
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Masked LM: held-out loss {0:F3} -> {1:F3} nats per masked character (unigram entropy {2:F3}); {3:P1} of the held-out masked characters predicted exactly. {4} sequences/s.",
                mlmReport.InitialValidationLoss, mlmReport.FinalValidationLoss, unigram, maskedAccuracy, ConsoleTrainingView.Rate(mlmReport.ItemsPerSecond)));

            // 2. The book of a verse: the same classifier, steps, seed and batches, with and without the pre-trained encoder.
            // Each piece is labelled with its verse's book; a held-out verse is scored by the sum of its pieces' log-probabilities.
            var books = new SequenceClassificationData(train.Sequences, train.Books, heldOut.Sequences, heldOut.Books, Classes, BertCharTokenizer.Pad);
            var tuneOptions = mlmOptions with
            {
                Steps = options.Get("--tune-steps", emulated ? 2 : 500),
                LearningRate = options.Get("--tune-lr", 1e-3),
                WarmupSteps = 40,
                EvalEvery = 100,
            };
            double prior = PriorEntropy(train.Books);
            var verseLabels = heldOutVerses.Select(v => v.Book).ToArray();
            var trainVerseLabels = trainVerses.Select(v => v.Book).ToArray();
            ClassificationScore Score(int[] predicted) => ClassificationScore.Of(verseLabels, predicted, Classes, trainVerseLabels);
            string classifierWeights = Path.Combine(outDir, "kjv-bert-books.safetensors");
            var (tuned, tunedReport, tunedVerses) = Classify(books, heldOut.VerseOf, heldOutVerses.Length, tuneOptions, seed, mlmCheckpoint, device, classifierWeights);
            var (scratch, scratchReport, scratchVerses) = Classify(books, heldOut.VerseOf, heldOutVerses.Length, tuneOptions, seed, null, device, classifierWeights);
            var tunedScore = Score(tunedVerses);
            var scratchScore = Score(scratchVerses);
            using (tuned)
            using (scratch)
            {
                var booksCheckpoint = Path.Combine(outDir, "kjv-bert-books.safetensors");
                tuned.SaveSafetensors(booksCheckpoint, Metadata("KjvBertBooks", tuneOptions.Steps, "held_out_accuracy", tunedScore.Accuracy));
                LossPlot.Save(Path.Combine(outDir, "kjv-bert-books-loss.png"), tunedReport, new[]
                {
                    new ReferenceLine("class prior entropy", prior),
                    new ReferenceLine("from scratch, final held-out loss", scratchReport.FinalValidationLoss),
                }, "KjvBertBooks fine-tuned from the MLM checkpoint: cross-entropy per piece over 8 books");
            }

            Console.WriteLine();
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "Which book is a held-out verse from? ({0:N0} verses, 8 books, Genesis to Ruth)", verseLabels.Length));
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "  majority class (Genesis):  accuracy {0:P1}, balanced accuracy {1:P1}", tunedScore.MajorityBaseline, 1.0 / Classes));
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "  from scratch:              accuracy {0:P1}, balanced accuracy {1:P1}, held-out loss per piece {2:F3}",
                scratchScore.Accuracy, scratchScore.BalancedAccuracy, scratchReport.FinalValidationLoss));
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "  fine-tuned from the MLM:   accuracy {0:P1}, balanced accuracy {1:P1}, held-out loss per piece {2:F3}",
                tunedScore.Accuracy, tunedScore.BalancedAccuracy, tunedReport.FinalValidationLoss));
            Console.WriteLine($"Saved {mlmCheckpoint}, kjv-bert-books.safetensors, kjv-bert.tokenizer.json and the loss plots in {outDir}.");
        }

        /// <summary>Verses as pieces of at most context - 2 characters, each [CLS] piece [SEP], with its verse's book and index.</summary>
        private static (int[][] Sequences, int[] Books, int[] VerseOf) Pieces((string Verse, int Book)[] verses, BertCharTokenizer tokenizer, int context)
        {
            var pieces = verses.SelectMany((v, i) => Wrap(v.Verse, context - 2).Select(piece => (Ids: tokenizer.EncodeSequence(piece, context), v.Book, Verse: i))).ToArray();
            return (pieces.Select(p => p.Ids).ToArray(), pieces.Select(p => p.Book).ToArray(), pieces.Select(p => p.Verse).ToArray());
        }

        /// <summary>
        /// Trains a fresh <see cref="KjvBertBooks"/> (its encoder loaded from <paramref name="pretrained"/> when given) on
        /// the training pieces, then predicts the book of each held-out verse: the class with the largest sum of
        /// log-probabilities over the verse's pieces.
        /// </summary>
        private static (KjvBertBooks.TorchSharpModel Model, TrainingReport Report, int[] Predicted) Classify(
            SequenceClassificationData books, int[] verseOf, int verses, TrainingOptions options, ulong seed, string? pretrained,
            IlgpuDevice? device, string weightsFile)
        {
            torch.manual_seed((long)seed); // both classifiers start from the same initialisation
            var model = KjvBertBooks.CreateTorchSharp();
            if (pretrained is not null)
                Console.WriteLine($"Fine-tuning from {Path.GetFileName(pretrained)}: {model.LoadPretrained(pretrained)}");
            else
                Console.WriteLine("Training the same classifier from scratch:");
            var report = TaskTraining.Train(device, model, options, books, d => KjvBertBooks.CreateIlgpu(d, seed),
                (classifier, b, train) => Encoder(classifier, b.Ids, b.Labels, b.Segments, b.Mask, train), weightsFile);

            model.eval();
            var votes = new double[verses, Classes];
            int piece = 0;
            using (torch.no_grad())
                foreach (var batch in books.InOrder(DataSplit.Validation, options.BatchSize))
                {
                    using var scope = torch.NewDisposeScope();
                    var logProbabilities = model.Forward(batch.Ids, batch.Segments, batch.Mask).Logits.log_softmax(-1).to(ScalarType.Float64);
                    var values = logProbabilities.data<double>().ToArray();
                    for (int row = 0; row < values.Length / Classes; row++, piece++)
                        for (int c = 0; c < Classes; c++) votes[verseOf[piece], c] += values[row * Classes + c];
                }
            model.train();
            var predicted = new int[verses];
            for (int v = 0; v < verses; v++)
                for (int c = 1; c < Classes; c++)
                    if (votes[v, c] > votes[v, predicted[v]]) predicted[v] = c;
            return (model, report, predicted);
        }

        /// <summary>One batch on an ILGPU encoder: forward and backward when <paramref name="train"/>, else the loss alone.</summary>
        private static float Encoder(IlgpuEncoderModel model, Tensor ids, Tensor targets, Tensor? segments, Tensor? mask, bool train)
        {
            int batch = (int)ids.shape[0], time = (int)ids.shape[1];
            var (i, t) = (HostArrays.Ints(ids), HostArrays.Ints(targets));
            var s = segments is null ? null : HostArrays.Ints(segments);
            var m = mask is null ? null : HostArrays.Bools(mask);
            return train ? model.ForwardBackward(i, t, batch, time, s, m) : model.Loss(i, t, batch, time, s, m);
        }

        /// <summary>Share of masked positions whose original character is the model's top prediction, over EvalBatches seeded held-out batches.</summary>
        private static double MaskedTokenAccuracy(MaskedLanguageModel model, MaskedLanguageData data, TrainingOptions options, ulong seed)
        {
            model.eval();
            var stream = data.Stream(DataSplit.Validation, options, seed, null);
            long correct = 0, total = 0;
            using var noGrad = torch.no_grad();
            for (int i = 0; i < options.EvalBatches; i++)
            {
                using var scope = torch.NewDisposeScope();
                var batch = stream.Next();
                var chosen = batch.Targets.ne(TransformerModel.IgnoredTarget);
                var predicted = model.Forward(batch.Ids, batch.Segments, batch.Mask).Logits.argmax(-1);
                correct += predicted.eq(batch.Targets).logical_and(chosen).sum().item<long>();
                total += chosen.sum().item<long>();
            }
            model.train();
            return (double)correct / total;
        }

        /// <summary>A verse in pieces of at most <paramref name="width"/> characters, broken after a space where there is one.</summary>
        internal static IEnumerable<string> Wrap(string verse, int width)
        {
            int start = 0;
            while (verse.Length - start > width)
            {
                int space = verse.LastIndexOf(' ', start + width - 1, width);
                int end = space > start ? space + 1 : start + width;
                yield return verse.Substring(start, end - start);
                start = end;
            }
            yield return verse.Substring(start);
        }

        /// <summary>The cross-entropy of always answering the training class frequencies, in nats.</summary>
        private static double PriorEntropy(IReadOnlyList<int> labels)
            => -labels.GroupBy(l => l).Select(g => (double)g.Count() / labels.Count).Sum(p => p * Math.Log(p));

        private static Dictionary<string, string> Metadata(string model, int steps, string metric, double value) => new()
        {
            ["format"] = "pt",
            ["model"] = model,
            ["steps"] = steps.ToString(CultureInfo.InvariantCulture),
            [metric] = value.ToString("F4", CultureInfo.InvariantCulture),
        };
    }
}
