using System;
using ModelDsl.Data;
using ModelDsl.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Training
{
    /// <summary>
    /// Image classification batches over a training and a validation set: pixels normalised with the training set's mean
    /// and standard deviation, training images shuffled every epoch and augmented, validation images in order, unchanged.
    /// </summary>
    public sealed class ImageClassificationData : ITaskData<ImageBatch>
    {
        /// <exception cref="ArgumentException">The two sets differ in image shape or classes.</exception>
        public ImageClassificationData(LabelledImages train, LabelledImages validation, ImageAugmentation? augmentation = null)
        {
            ArgumentNullException.ThrowIfNull(train);
            ArgumentNullException.ThrowIfNull(validation);
            if (train.Channels != validation.Channels || train.Height != validation.Height || train.Width != validation.Width || train.Classes != validation.Classes)
                throw new ArgumentException(
                    $"Validation images are {validation.Channels} x {validation.Height} x {validation.Width} in {validation.Classes} classes; " +
                    $"training images are {train.Channels} x {train.Height} x {train.Width} in {train.Classes}.", nameof(validation));
            Train = train;
            Validation = validation;
            Augmentation = augmentation ?? ImageAugmentation.None;
            (Mean, StdDev) = train.PixelStatistics();
        }

        public LabelledImages Train { get; }

        public LabelledImages Validation { get; }

        /// <summary>What is done to training images (never to validation images).</summary>
        public ImageAugmentation Augmentation { get; }

        /// <summary>Mean of the training pixels scaled to [0, 1]; subtracted from every image.</summary>
        public double Mean { get; }

        /// <summary>Standard deviation of the training pixels scaled to [0, 1]; every image is divided by it.</summary>
        public double StdDev { get; }

        public string ItemName => "images";

        public long Items(DataSplit split) => Images(split).Count;

        public bool CanStream(DataSplit split, TrainingOptions options) => Images(split).Count > 0;

        public IBatchStream<ImageBatch> Stream(DataSplit split, TrainingOptions options, ulong seed, Device? device)
        {
            ArgumentNullException.ThrowIfNull(options);
            bool train = split == DataSplit.Train;
            return new Batches(Sampler(Images(split), options.BatchSize, train, train ? Augmentation : ImageAugmentation.None, seed), device);
        }

        /// <summary>
        /// Predicts every image of <paramref name="images"/> (normalised as the training set, in batches, in eval mode and
        /// without gradients; the model's mode is restored) and counts the predictions by true class.
        /// </summary>
        public ConfusionMatrix Evaluate(ImageClassificationModel model, LabelledImages images, string[] classNames, int batchSize = 500)
        {
            ArgumentNullException.ThrowIfNull(model);
            ArgumentNullException.ThrowIfNull(images);
            var sampler = Sampler(images, Math.Min(batchSize, images.Count), train: false, ImageAugmentation.None, seed: 0);
            var pixels = new float[sampler.BatchElements];
            var labels = new long[sampler.BatchSize];
            var shape = new long[] { sampler.BatchSize, images.Channels, images.Height, images.Width };
            var confusion = new ConfusionMatrix(classNames);
            bool wasTraining = model.training;
            model.eval();
            try
            {
                using var noGrad = torch.no_grad();
                for (int done = 0; done < images.Count; done += sampler.BatchSize)
                {
                    using var scope = torch.NewDisposeScope();
                    sampler.Next(pixels, labels);
                    var predicted = model.Forward(torch.tensor(pixels, shape).to(model.Device)).Logits.argmax(-1).cpu().data<long>().ToArray();
                    for (int b = 0; b < predicted.Length && done + b < images.Count; b++) confusion.Add((int)labels[b], (int)predicted[b]);
                }
            }
            finally
            {
                model.train(wasTraining);
            }
            return confusion;
        }

        private LabelledImages Images(DataSplit split) => split == DataSplit.Train ? Train : Validation;

        private ImageBatchSampler Sampler(LabelledImages images, int batchSize, bool train, ImageAugmentation augmentation, ulong seed)
            => new(images, batchSize, Mean, StdDev, shuffle: train, augmentation, seed);

        private sealed class Batches : IBatchStream<ImageBatch>
        {
            private readonly ImageBatchSampler sampler;
            private readonly Device? device;
            private readonly float[] pixels;
            private readonly long[] labels;
            private readonly long[] shape;

            public Batches(ImageBatchSampler sampler, Device? device)
            {
                this.sampler = sampler;
                this.device = device;
                pixels = new float[sampler.BatchElements];
                labels = new long[sampler.BatchSize];
                var images = sampler.Images;
                shape = new long[] { sampler.BatchSize, images.Channels, images.Height, images.Width };
            }

            public long ItemsPerBatch => sampler.BatchSize;

            public ImageBatch Next()
            {
                sampler.Next(pixels, labels);
                var x = torch.tensor(pixels, shape);
                var y = torch.tensor(labels);
                if (device is not null && device.type != DeviceType.CPU)
                {
                    x = x.to(device);
                    y = y.to(device);
                }
                return new ImageBatch(x, y);
            }
        }
    }
}
