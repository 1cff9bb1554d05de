using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using ModelDsl.Examples.Backends;
using ModelDsl.TorchSharp;
using ModelDsl.TorchSharp.Training;
using ModelDsl.Training;

namespace ModelDsl.Examples.Jobs
{
    /// <summary>
    /// The ViT example: train FashionVit on the embedded Fashion-MNIST subset (9,000 training images, 1,000 held out for
    /// validation), report its accuracy on 2,000 test images by class, save checkpoint and loss plot.
    /// </summary>
    internal static class VitJob
    {
        public const string Usage = """
              vit [options]              train FashionVit on the embedded Fashion-MNIST images, report test accuracy
                --steps N                optimizer steps (default 2500)
                --batch N                images per step (default 64)
                --lr X                   peak learning rate (default 2e-3)
                --shift N                random shift of training images, pixels each way (default 1; 0 = none)
                --out DIR                where the checkpoint and plot go (default ./out)
                --seed N                 seed for initialisation, shuffling and augmentation (default 1337)
                --threads N              libtorch threads (default 1: faster here, see docs/families/vit.md)
            """ + "\n" + BackendOption.Usage;

        private const int ValidationImages = 1000;

        public static void Train(Options options)
        {
            TorchSharpRuntime.EnsureLoaded();
            var outDir = Directory.CreateDirectory(options.Get("--out", "out")).FullName;
            ulong seed = (ulong)options.Get("--seed", 1337);
            global::TorchSharp.torch.manual_seed((long)seed);

            var all = FashionMnist.Train();
            var test = FashionMnist.Test();
            var train = all.Slice(0, all.Count - ValidationImages);
            var validation = all.Slice(all.Count - ValidationImages, ValidationImages);
            var data = new ImageClassificationData(train, validation, new ImageAugmentation(MaxShift: options.Get("--shift", 1)));

            Console.WriteLine(FashionVit.Card);
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Data: Fashion-MNIST, {0:N0} training / {1:N0} validation / {2:N0} test images of {3} x {4}, {5} classes; pixels normalised with mean {6:F4}, std {7:F4}; training images shifted up to {8} px",
                train.Count, validation.Count, test.Count, train.Height, train.Width, train.Classes, data.Mean, data.StdDev, data.Augmentation.MaxShift));
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Forward pass: {0:N1} MFLOPs per image (matrix products; a training step costs about 3x that)", FashionVit.Card.ForwardFlops(1, 0) / 1e6));

            using var device = BackendOption.Open(options, "2 steps of 4 images, then the test accuracy of those weights on TorchSharp");
            bool emulated = device is { IsEmulator: true };
            using var model = FashionVit.CreateTorchSharp();
            var trainingOptions = new TrainingOptions
            {
                Steps = options.Get("--steps", emulated ? 2 : 2500),
                BatchSize = options.Get("--batch", emulated ? 4 : 64),
                LearningRate = options.Get("--lr", 2e-3),
                WarmupSteps = 50,
                MinLearningRateRatio = 0.05,
                WeightDecay = 0.05,
                Beta2 = 0.99,
                EvalEvery = 200,
                EvalBatches = emulated ? 1 : (ValidationImages + 63) / 64,
                Seed = seed,
                // One thread: the matrices of 17 positions x 64 are too small to split, and on a loaded machine two
                // libtorch threads waited for each other: 32 images/s against 600-740 with one (docs/families/vit.md).
                Threads = options.Get("--threads", 1),
            };
            var checkpoint = Path.Combine(outDir, "fashion-vit.safetensors");
            var report = TaskTraining.Train(device, model, trainingOptions, data, d => FashionVit.CreateIlgpu(d, seed), (vit, b, train) =>
            {
                var (pixels, labels, batch) = (HostArrays.Floats(b.Pixels), HostArrays.Ints(b.Labels), (int)b.Labels.shape[0]);
                return train ? vit.ForwardBackward(pixels, labels, batch) : vit.Loss(pixels, labels, batch);
            }, checkpoint);

            var confusion = data.Evaluate(model, test, FashionMnist.ClassNames);
            model.SaveSafetensors(checkpoint, new Dictionary<string, string>
            {
                ["format"] = "pt",
                ["model"] = "FashionVit",
                ["backend"] = device is null ? "torchsharp" : "ilgpu",
                ["steps"] = trainingOptions.Steps.ToString(CultureInfo.InvariantCulture),
                ["pixel_mean"] = data.Mean.ToString("R", CultureInfo.InvariantCulture),
                ["pixel_std"] = data.StdDev.ToString("R", CultureInfo.InvariantCulture),
                ["test_accuracy"] = confusion.Accuracy.ToString("F4", CultureInfo.InvariantCulture),
            });
            var plot = Path.Combine(outDir, "fashion-vit-loss.png");
            LossPlot.Save(plot, report, new[] { new ReferenceLine("chance (ln 10)", Math.Log(train.Classes)) });

            Console.WriteLine();
            Console.WriteLine("Test images by class (rows: true class, columns: predicted class):");
            Console.WriteLine(confusion);
            if (confusion.MostConfused() is var (actual, predicted, count))
                Console.WriteLine($"Most frequent mistake: {FashionMnist.ClassNames[actual]} taken for {FashionMnist.ClassNames[predicted]} ({count} times).");
            Console.WriteLine(string.Format(CultureInfo.InvariantCulture,
                "Test accuracy {0:P1} ({1:N0} of {2:N0} images; chance 10%). Validation loss {3:F3} -> {4:F3} nats; {5} images/s while training.",
                confusion.Accuracy, Enumerable.Range(0, confusion.Classes).Sum(c => confusion[c, c]), confusion.Total,
                report.InitialValidationLoss, report.FinalValidationLoss, ConsoleTrainingView.Rate(report.ItemsPerSecond)));
            Console.WriteLine($"Saved {checkpoint} and {plot}.");
        }
    }
}
