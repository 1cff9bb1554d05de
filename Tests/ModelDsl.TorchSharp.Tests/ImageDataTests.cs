using System;
using System.Buffers.Binary;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Security.Cryptography;
using ModelDsl.Data;
using ModelDsl.TorchSharp.Training;
using ModelDsl.Training;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>
    /// The image-classification data path: IDX files (the shipped Fashion-MNIST subset and malformed files), labelled
    /// images, seeded shuffled and augmented batches, and the confusion matrix a classifier's evaluation fills.
    /// </summary>
    public sealed class ImageDataTests : IDisposable
    {
        private readonly ITestOutputHelper log;
        private readonly OneTorchThread thread = new();

        public ImageDataTests(ITestOutputHelper log) => this.log = log;

        public void Dispose() => thread.Dispose();

        private static string Shipped(string file) => Path.Combine(AppContext.BaseDirectory, "Data", file);

        /// <summary>An IDX file of unsigned bytes: magic 0, 0, 0x08, rank; big-endian sizes; the data.</summary>
        private static byte[] Idx(int[] shape, byte[] data, byte type = IdxFile.UnsignedByte)
        {
            var bytes = new byte[4 + 4 * shape.Length + data.Length];
            bytes[2] = type;
            bytes[3] = (byte)shape.Length;
            for (int d = 0; d < shape.Length; d++) BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(4 + 4 * d), (uint)shape[d]);
            data.CopyTo(bytes, 4 + 4 * shape.Length);
            return bytes;
        }

        private static byte[] Gzip(byte[] bytes)
        {
            using var output = new MemoryStream();
            using (var gzip = new GZipStream(output, CompressionLevel.Fastest)) gzip.Write(bytes);
            return output.ToArray();
        }

        private static IdxArray Read(byte[] bytes) => IdxFile.Read(new MemoryStream(bytes), "test.idx");

        // ------------------------------------------------------------------------------------------------ IDX files

        /// <summary>
        /// The four files the vit job embeds: the sha256 of their decompressed bytes (Data/README.md), their headers, the
        /// first label (Fashion-MNIST's first training and test images are both ankle boots) and the class balance.
        /// </summary>
        [Theory]
        [InlineData("train", 10_000, "ed2e37ed5a3a57d212141a69fe0a0de5a7126ffba14ac3f7e76f5f52cc04b1f0", "a69f2dad024ca220a8c4d85f621fdf929042d40c444abde2868903e9220ad517")]
        [InlineData("test", 2_000, "862035b0a96959b614c9574f4c2b0ae9584ca234813e8d6d7adb7838b12ca46b", "aa3f574d30afaf0d4d9da084a6f8541771e20693d6a97fae6e9a4953fca8f078")]
        public void Shipped_Fashion_MNIST_subset_reads_as_documented(string split, int count, string imagesSha256, string labelsSha256)
        {
            string imagesFile = Shipped($"fashion-mnist-{split}-images-idx3-ubyte.gz"), labelsFile = Shipped($"fashion-mnist-{split}-labels-idx1-ubyte.gz");
            Assert.Equal(imagesSha256, Sha256OfDecompressed(imagesFile));
            Assert.Equal(labelsSha256, Sha256OfDecompressed(labelsFile));
            var images = IdxFile.Read(imagesFile);
            var labels = IdxFile.Read(labelsFile);
            Assert.Equal(new[] { count, 28, 28 }, images.Shape);
            Assert.Equal(new[] { count }, labels.Shape);
            Assert.Equal(9, labels.Data[0]);
            var counts = LabelledImages.FromIdx(images, "images", labels, "labels", 10).ClassCounts();
            log.WriteLine($"{split}: {string.Join(", ", counts)} images per class");
            Assert.All(counts, c => Assert.InRange(c, count / 10 * 9 / 10, count / 10 * 11 / 10)); // within 10% of balanced
        }

        private static string Sha256OfDecompressed(string path)
        {
            using var gzip = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
            return Convert.ToHexStringLower(SHA256.HashData(gzip));
        }

        [Fact]
        public void Plain_and_gzip_compressed_files_read_the_same_array()
        {
            var data = Enumerable.Range(0, 12).Select(i => (byte)(i * 20)).ToArray();
            var plain = Read(Idx(new[] { 2, 3, 2 }, data));
            var compressed = Read(Gzip(Idx(new[] { 2, 3, 2 }, data)));
            Assert.Equal(new[] { 2, 3, 2 }, plain.Shape);
            Assert.Equal(2, plain.Count);
            Assert.Equal(data, plain.Data);
            Assert.Equal(plain.Shape, compressed.Shape);
            Assert.Equal(plain.Data, compressed.Data);
        }

        public static TheoryData<string, byte[], string> MalformedFiles() => new()
        {
            { "too short for a header", new byte[] { 0, 0, 8 }, "has 3 byte(s); the header alone needs at least 4" },
            { "not IDX", new byte[] { 0x50, 0x4B, 3, 4, 0, 0 }, "starts with 0x50 0x4B; an IDX file starts with two zero bytes" },
            { "float32 elements", Idx(new[] { 1 }, new byte[4], type: 0x0D), "elements of type 0x0D (float32); only unsigned bytes (0x08) are read" },
            { "no dimensions", new byte[] { 0, 0, 8, 0 }, "declares 0 dimensions" },
            { "header cut short", new byte[] { 0, 0, 8, 3, 0, 0, 0, 2 }, "fewer than its header of 3 dimension(s) needs (16)" },
            { "data cut short", Idx(new[] { 2, 3 }, new byte[5]), "has 5 bytes of data; its shape [2, 3] needs 6 (the file is truncated)" },
            { "bytes after the data", Idx(new[] { 2 }, new byte[3]), "has 3 bytes of data; its shape [2] needs 2 (1 bytes follow the array)" },
            { "absurd size", Idx(new[] { int.MaxValue, 4 }, Array.Empty<byte>()), "which makes the array larger than the 1073741824 bytes" },
            { "corrupt gzip", new byte[] { 0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3, 0xFF, 0xFF, 0xFF }, "the gzip data are corrupt" },
        };

        [Theory]
        [MemberData(nameof(MalformedFiles))]
        public void Malformed_file_is_refused_naming_the_file_and_the_problem(string what, byte[] bytes, string expected)
        {
            var e = Assert.Throws<IdxFormatException>(() => Read(bytes));
            log.WriteLine($"{what}: {e.Message}");
            Assert.StartsWith("IDX file 'test.idx'", e.Message, StringComparison.Ordinal);
            Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        }

        [Fact]
        public void Image_and_label_files_must_agree()
        {
            var images = Read(Idx(new[] { 3, 2, 2 }, new byte[12]));
            var labels = Read(Idx(new[] { 3 }, new byte[] { 0, 4, 1 }));
            Assert.Contains("'imgs' has 3 images but 'lbls' has 2 labels",
                Assert.Throws<IdxFormatException>(() => LabelledImages.FromIdx(images, "imgs", Read(Idx(new[] { 2 }, new byte[2])), "lbls", 5)).Message, StringComparison.Ordinal);
            Assert.Contains("'lbls': label 4 of image 1 is not below the 4 classes",
                Assert.Throws<IdxFormatException>(() => LabelledImages.FromIdx(images, "imgs", labels, "lbls", 4)).Message, StringComparison.Ordinal);
            Assert.Contains("'lbls' has shape [3]; images are [images, rows, columns]",
                Assert.Throws<IdxFormatException>(() => LabelledImages.FromIdx(labels, "lbls", images, "imgs", 5)).Message, StringComparison.Ordinal);
            var set = LabelledImages.FromIdx(images, "imgs", labels, "lbls", 5);
            Assert.Equal((3, 1, 2, 2, 5), (set.Count, set.Channels, set.Height, set.Width, set.Classes));
        }

        // ------------------------------------------------------------------------------------------------ batches

        /// <summary>Six 2 x 2 images whose pixels are 10 x index + position, labels index mod 3.</summary>
        private static LabelledImages Six() => new(
            Enumerable.Range(0, 6).SelectMany(i => Enumerable.Range(0, 4).Select(p => (byte)(10 * i + p))).ToArray(),
            Enumerable.Range(0, 6).Select(i => (byte)(i % 3)).ToArray(), channels: 1, height: 2, width: 2, classes: 3);

        [Fact]
        public void Shuffled_batches_show_every_image_once_per_epoch_in_a_seeded_order()
        {
            var sampler = new ImageBatchSampler(Six(), 3, 0, 1, shuffle: true, ImageAugmentation.None, seed: 5);
            var epochs = Enumerable.Range(0, 4).Select(_ => sampler.NextIndices().Concat(sampler.NextIndices()).ToArray()).ToList();
            Assert.All(epochs, e => Assert.Equal(Enumerable.Range(0, 6), e.OrderBy(i => i)));
            Assert.True(epochs.Distinct(new ArrayComparer()).Count() > 1, "each epoch gets a new order");
            var again = new ImageBatchSampler(Six(), 3, 0, 1, shuffle: true, ImageAugmentation.None, seed: 5);
            Assert.Equal(epochs[0], again.NextIndices().Concat(again.NextIndices()));
            var other = new ImageBatchSampler(Six(), 6, 0, 1, shuffle: true, ImageAugmentation.None, seed: 6);
            Assert.NotEqual(epochs[0], other.NextIndices());

            var ordered = new ImageBatchSampler(Six(), 4, 0, 1, shuffle: false, ImageAugmentation.None, seed: 5);
            Assert.Equal(new[] { 0, 1, 2, 3 }, ordered.NextIndices());
            Assert.Equal(new[] { 4, 5, 0, 1 }, ordered.NextIndices()); // wraps around
        }

        [Fact]
        public void Batches_hold_normalised_pixels_and_their_labels()
        {
            const double mean = 0.1, std = 0.2;
            var sampler = new ImageBatchSampler(Six(), 2, mean, std, shuffle: false, ImageAugmentation.None, seed: 0);
            var pixels = new float[8];
            var labels = new long[2];
            sampler.Next(pixels, labels);
            sampler.Next(pixels, labels); // images 2 and 3
            Assert.Equal(new long[] { 2, 0 }, labels);
            for (int i = 0; i < 8; i++)
                Assert.Equal((float)(((20 + 10 * (i / 4) + i % 4) / 255.0 - mean) / std), pixels[i]);
            Assert.Throws<ArgumentException>(() => sampler.Next(new float[7], labels));
        }

        /// <summary>One bright pixel at (row 2, column 1) of a 5 x 5 image: shifted copies show it moved by at most the shift, and every shift occurs.</summary>
        [Fact]
        public void Augmentation_shifts_within_its_bounds()
        {
            var image = new byte[25];
            image[2 * 5 + 1] = 255;
            var set = new LabelledImages(image, new byte[] { 0 }, 1, 5, 5, 1);
            var sampler = new ImageBatchSampler(set, 1, 0, 1, shuffle: true, new ImageAugmentation(MaxShift: 1), seed: 9);
            var pixels = new float[25];
            var labels = new long[1];
            var seen = new System.Collections.Generic.HashSet<(int, int)>();
            for (int draw = 0; draw < 200; draw++)
            {
                sampler.Next(pixels, labels);
                Assert.Equal(24, pixels.Count(p => p == 0f)); // one pixel moved, none lost inside the image
                int bright = Array.IndexOf(pixels, 1f);
                int row = bright / 5, column = bright % 5;
                Assert.InRange(row, 1, 3);
                Assert.InRange(column, 0, 2);
                seen.Add((row, column));
            }
            Assert.Equal(9, seen.Count); // all 3 x 3 shifts
            var edge = new ImageBatchSampler(set, 1, 0, 1, shuffle: true, new ImageAugmentation(MaxShift: 2), seed: 9);
            int lost = 0;
            for (int draw = 0; draw < 200; draw++)
            {
                edge.Next(pixels, labels);
                if (pixels.All(p => p == 0f)) lost++; // shifted 2 to the left: the pixel left the image, background came in
            }
            Assert.InRange(lost, 20, 60); // 1 in 5 draws
        }

        [Fact]
        public void Task_data_streams_float_images_and_int64_labels()
        {
            using var scope = torch.NewDisposeScope();
            var set = Six();
            var data = new ImageClassificationData(set.Slice(0, 4), set.Slice(4, 2), new ImageAugmentation(MaxShift: 1));
            Assert.Equal(("images", 4L, 2L), (data.ItemName, data.Items(DataSplit.Train), data.Items(DataSplit.Validation)));
            var (mean, std) = set.Slice(0, 4).PixelStatistics();
            Assert.Equal((mean, std), (data.Mean, data.StdDev));
            var batch = data.Stream(DataSplit.Validation, new TrainingOptions { BatchSize = 3 }, 1, null).Next();
            Assert.Equal(new long[] { 3, 1, 2, 2 }, batch.Pixels.shape);
            Assert.Equal(ScalarType.Float32, batch.Pixels.dtype);
            Assert.Equal(new long[] { 1, 2, 1 }, batch.Labels.data<long>().ToArray()); // images 4, 5, 4: validation is in order, unchanged
            Assert.Equal((float)((40 / 255.0 - mean) / std), batch.Pixels[0, 0, 0, 0].item<float>(), 6);
            Assert.Throws<ArgumentException>(() => new ImageClassificationData(set, new LabelledImages(new byte[9], new byte[1], 1, 3, 3, 3)));
        }

        /// <summary>Evaluation predicts every image once, also when the count is no multiple of the batch, as Forward would.</summary>
        [Fact]
        public void Evaluation_counts_every_image_once_with_the_models_predictions()
        {
            using var scope = torch.NewDisposeScope();
            var random = new Random(3);
            var pixels = new byte[7 * 256];
            random.NextBytes(pixels);
            var images = new LabelledImages(pixels, Enumerable.Range(0, 7).Select(i => (byte)(i % 10)).ToArray(), 1, 16, 16, 10);
            var data = new ImageClassificationData(images, images);
            var model = TinyVit.CreateTorchSharp();
            Numerics.Randomize(model, 5);
            model.train();

            var names = Enumerable.Range(0, 10).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            var confusion = data.Evaluate(model, images, names, batchSize: 3);

            Assert.True(model.training, "the model's mode is restored");
            model.eval();
            var batch = data.Stream(DataSplit.Validation, new TrainingOptions { BatchSize = 7 }, 0, null).Next();
            var predicted = model.Forward(batch.Pixels).Logits.argmax(-1).data<long>().ToArray();
            var expected = new ConfusionMatrix(names);
            for (int i = 0; i < 7; i++) expected.Add(i % 10, (int)predicted[i]);
            Assert.Equal(7, confusion.Total);
            for (int a = 0; a < 10; a++)
                for (int p = 0; p < 10; p++)
                    Assert.Equal(expected[a, p], confusion[a, p]);
        }

        [Fact]
        public void Confusion_matrix_counts_accuracy_per_class_and_the_most_frequent_mistake()
        {
            var m = new ConfusionMatrix(new[] { "cat", "dog", "bird" });
            foreach (var (a, p) in new[] { (0, 0), (0, 0), (0, 1), (1, 1), (1, 0), (1, 0), (2, 2) }) m.Add(a, p);
            Assert.Equal(7, m.Total);
            Assert.Equal(4 / 7.0, m.Accuracy, 12);
            Assert.Equal(2 / 3.0, m.ClassAccuracy(0), 12);
            Assert.Equal(1 / 3.0, m.ClassAccuracy(1), 12);
            Assert.Equal(3, m.Support(1));
            Assert.Equal((1, 0, 2L), m.MostConfused());
            Assert.Throws<ArgumentOutOfRangeException>(() => m.Add(3, 0));
            string table = m.ToString();
            log.WriteLine(table);
            Assert.Contains("dog    |      3  33.3 % |", table, StringComparison.Ordinal);
            Assert.EndsWith("all    |      7  57.1 % |", table, StringComparison.Ordinal);
            Assert.Null(new ConfusionMatrix(new[] { "a" }).MostConfused());
        }

        private sealed class ArrayComparer : System.Collections.Generic.IEqualityComparer<int[]>
        {
            public bool Equals(int[]? x, int[]? y) => x!.SequenceEqual(y!);

            public int GetHashCode(int[] obj) => obj.Aggregate(17, (h, v) => h * 31 + v);
        }
    }
}
