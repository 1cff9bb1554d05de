using System;
using ModelDsl.Data;

namespace ModelDsl.Training
{
    /// <summary>
    /// Random changes to training images that keep their class: a shift of up to <see cref="MaxShift"/> pixels in each
    /// direction, drawn uniformly per image and axis (the uncovered border is background, pixel value 0).
    /// </summary>
    public sealed record ImageAugmentation(int MaxShift = 0)
    {
        /// <summary>No change: what evaluation uses.</summary>
        public static ImageAugmentation None { get; } = new();
    }

    /// <summary>
    /// Seeded batches of images as float pixels [B, C, H, W] (row-major), normalised as (pixel / 255 - mean) / stdDev,
    /// with their labels. Shuffled: every image once per epoch, in a new order each epoch; otherwise in order, wrapping
    /// around. Backend-neutral: backends turn the filled arrays into their own tensors. The same seed gives the same
    /// batches on every platform and .NET version (SplitMix64, not <see cref="Random"/>).
    /// </summary>
    public sealed class ImageBatchSampler
    {
        private readonly LabelledImages images;
        private readonly bool shuffle;
        private readonly ImageAugmentation augmentation;
        private readonly float[] values = new float[256]; // pixel byte -> normalised value
        private readonly int[] order;
        private int position;
        private readonly SplitMix64 random;

        /// <exception cref="ArgumentOutOfRangeException">The batch size is not positive, the deviation not positive, or the shift negative.</exception>
        public ImageBatchSampler(LabelledImages images, int batchSize, double mean, double stdDev, bool shuffle, ImageAugmentation augmentation, ulong seed)
        {
            ArgumentNullException.ThrowIfNull(images);
            ArgumentNullException.ThrowIfNull(augmentation);
            if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be positive.");
            if (!(stdDev > 0) || !double.IsFinite(stdDev)) throw new ArgumentOutOfRangeException(nameof(stdDev), stdDev, "The standard deviation must be positive and finite.");
            if (augmentation.MaxShift < 0) throw new ArgumentOutOfRangeException(nameof(augmentation), augmentation.MaxShift, "The shift must not be negative.");
            this.images = images;
            this.shuffle = shuffle;
            this.augmentation = augmentation;
            BatchSize = batchSize;
            for (int v = 0; v < values.Length; v++) values[v] = (float)((v / 255.0 - mean) / stdDev);
            order = new int[images.Count];
            for (int i = 0; i < order.Length; i++) order[i] = i;
            random = new SplitMix64(seed);
            position = order.Length; // the first batch starts an epoch
        }

        /// <summary>Images per batch (B).</summary>
        public int BatchSize { get; }

        /// <summary>Values of one pixel array: B x C x H x W.</summary>
        public long BatchElements => (long)BatchSize * images.PixelsPerImage;

        /// <summary>The images drawn from.</summary>
        public LabelledImages Images => images;

        /// <summary>The indices of the next batch's images, advancing the stream (for inspection and tests).</summary>
        public int[] NextIndices()
        {
            var indices = new int[BatchSize];
            for (int b = 0; b < indices.Length; b++) indices[b] = NextImage();
            return indices;
        }

        /// <summary>Fills the next batch: <paramref name="pixels"/> [B, C, H, W] and <paramref name="labels"/> [B].</summary>
        /// <exception cref="ArgumentException">A span has the wrong length.</exception>
        public void Next(Span<float> pixels, Span<long> labels)
        {
            if (pixels.Length != BatchElements)
                throw new ArgumentException($"The pixel buffer holds {pixels.Length} values; a batch of {BatchSize} images of {images.PixelsPerImage} needs {BatchElements}.", nameof(pixels));
            if (labels.Length != BatchSize)
                throw new ArgumentException($"The label buffer holds {labels.Length} values; a batch needs {BatchSize}.", nameof(labels));
            int size = images.PixelsPerImage;
            for (int b = 0; b < BatchSize; b++)
            {
                int index = NextImage();
                labels[b] = images.Label(index);
                var target = pixels.Slice(b * size, size);
                if (augmentation.MaxShift == 0)
                    Normalise(images.Pixels(index), target);
                else
                    Shift(images.Pixels(index), target);
            }
        }

        private void Normalise(ReadOnlySpan<byte> source, Span<float> target)
        {
            for (int i = 0; i < source.Length; i++) target[i] = values[source[i]];
        }

        // target[c, y, x] = source[c, y - dy, x - dx]; background outside the source.
        private void Shift(ReadOnlySpan<byte> source, Span<float> target)
        {
            int s = augmentation.MaxShift, h = images.Height, w = images.Width;
            int dy = random.NextIndex(2 * s + 1) - s, dx = random.NextIndex(2 * s + 1) - s;
            for (int c = 0; c < images.Channels; c++)
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                    {
                        int sy = y - dy, sx = x - dx;
                        byte p = sy >= 0 && sy < h && sx >= 0 && sx < w ? source[(c * h + sy) * w + sx] : (byte)0;
                        target[(c * h + y) * w + x] = values[p];
                    }
        }

        private int NextImage()
        {
            if (position == order.Length)
            {
                position = 0;
                if (shuffle)
                    for (int i = order.Length - 1; i > 0; i--) // Fisher-Yates
                    {
                        int j = random.NextIndex(i + 1);
                        (order[i], order[j]) = (order[j], order[i]);
                    }
            }
            return order[position++];
        }
    }
}
