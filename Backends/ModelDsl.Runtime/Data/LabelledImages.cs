using System;

namespace ModelDsl.Data
{
    /// <summary>
    /// Images of 8-bit pixels [Count, Channels, Height, Width] (row-major) with one class label each, as an image
    /// classifier's data set holds them before normalisation.
    /// </summary>
    public sealed class LabelledImages
    {
        private readonly byte[] pixels;
        private readonly byte[] labels;

        /// <summary>Images and labels; every label must be below <paramref name="classes"/>.</summary>
        /// <exception cref="ArgumentException">The sizes do not agree, or a label is out of range.</exception>
        public LabelledImages(byte[] pixels, byte[] labels, int channels, int height, int width, int classes)
        {
            ArgumentNullException.ThrowIfNull(pixels);
            ArgumentNullException.ThrowIfNull(labels);
            if (channels <= 0 || height <= 0 || width <= 0 || classes <= 0)
                throw new ArgumentOutOfRangeException(nameof(channels), $"Channels ({channels}), height ({height}), width ({width}) and classes ({classes}) must be positive.");
            long perImage = (long)channels * height * width;
            if (pixels.Length != labels.Length * perImage)
                throw new ArgumentException($"{labels.Length} labels need {labels.Length * perImage} pixels of {channels} x {height} x {width} images, but there are {pixels.Length}.", nameof(pixels));
            int bad = Array.FindIndex(labels, l => l >= classes);
            if (bad >= 0)
                throw new ArgumentException($"Label {labels[bad]} of image {bad} is not below the {classes} classes.", nameof(labels));
            this.pixels = pixels;
            this.labels = labels;
            Channels = channels;
            Height = height;
            Width = width;
            Classes = classes;
        }

        /// <summary>
        /// Greyscale images from an IDX image file [images, rows, columns] and its label file [labels] (MNIST, Fashion-MNIST).
        /// </summary>
        /// <exception cref="IdxFormatException">The arrays do not have those shapes, their counts differ, or a label is not below <paramref name="classes"/>.</exception>
        public static LabelledImages FromIdx(IdxArray images, string imagesName, IdxArray labels, string labelsName, int classes)
        {
            ArgumentNullException.ThrowIfNull(images);
            ArgumentNullException.ThrowIfNull(labels);
            if (images.Shape.Length != 3)
                throw new IdxFormatException($"IDX file '{imagesName}' has shape [{string.Join(", ", images.Shape)}]; images are [images, rows, columns].");
            if (labels.Shape.Length != 1)
                throw new IdxFormatException($"IDX file '{labelsName}' has shape [{string.Join(", ", labels.Shape)}]; labels are [labels].");
            if (images.Count != labels.Count)
                throw new IdxFormatException($"IDX file '{imagesName}' has {images.Count} images but '{labelsName}' has {labels.Count} labels.");
            int bad = Array.FindIndex(labels.Data, l => l >= classes);
            if (bad >= 0)
                throw new IdxFormatException($"IDX file '{labelsName}': label {labels.Data[bad]} of image {bad} is not below the {classes} classes.");
            return new LabelledImages(images.Data, labels.Data, 1, images.Shape[1], images.Shape[2], classes);
        }

        public int Count => labels.Length;

        public int Channels { get; }

        public int Height { get; }

        public int Width { get; }

        public int Classes { get; }

        /// <summary>Values per image: Channels x Height x Width.</summary>
        public int PixelsPerImage => Channels * Height * Width;

        /// <summary>The pixels of image <paramref name="index"/>, [Channels, Height, Width] row-major.</summary>
        public ReadOnlySpan<byte> Pixels(int index) => pixels.AsSpan(checked(index * PixelsPerImage), PixelsPerImage);

        /// <summary>The label of image <paramref name="index"/>.</summary>
        public int Label(int index) => labels[index];

        /// <summary>Images per class.</summary>
        public int[] ClassCounts()
        {
            var counts = new int[Classes];
            foreach (var l in labels) counts[l]++;
            return counts;
        }

        /// <summary>Images <paramref name="start"/> .. <paramref name="start"/> + <paramref name="count"/> - 1 (copied).</summary>
        public LabelledImages Slice(int start, int count)
        {
            if (start < 0 || count <= 0 || start + count > Count)
                throw new ArgumentOutOfRangeException(nameof(start), $"Images {start} .. {start + count - 1} are not within the {Count} images.");
            return new LabelledImages(pixels.AsSpan(start * PixelsPerImage, count * PixelsPerImage).ToArray(),
                labels.AsSpan(start, count).ToArray(), Channels, Height, Width, Classes);
        }

        /// <summary>Mean and standard deviation of all pixels scaled to [0, 1], for normalisation.</summary>
        public (double Mean, double StdDev) PixelStatistics()
        {
            double sum = 0, squares = 0;
            foreach (var p in pixels)
            {
                double x = p / 255.0;
                sum += x;
                squares += x * x;
            }
            double mean = sum / pixels.Length;
            return (mean, Math.Sqrt(Math.Max(0, squares / pixels.Length - mean * mean)));
        }
    }
}
