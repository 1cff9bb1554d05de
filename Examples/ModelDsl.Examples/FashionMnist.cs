using System;
using ModelDsl.Data;

namespace ModelDsl.Examples
{
    /// <summary>
    /// The first 10,000 training and 2,000 test images of Zalando's Fashion-MNIST (28 x 28 greyscale, 10 classes),
    /// embedded in the program as the gzip-compressed IDX files Data/make-fashion-mnist.sh cuts from Debian's package.
    /// </summary>
    internal static class FashionMnist
    {
        /// <summary>The labels' names, in label order (Fashion-MNIST's README).</summary>
        public static readonly string[] ClassNames =
            { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot" };

        public static LabelledImages Train() => Load("train");

        public static LabelledImages Test() => Load("test");

        private static LabelledImages Load(string split)
        {
            string images = $"fashion-mnist-{split}-images-idx3-ubyte.gz", labels = $"fashion-mnist-{split}-labels-idx1-ubyte.gz";
            return LabelledImages.FromIdx(Read(images), images, Read(labels), labels, ClassNames.Length);
        }

        private static IdxArray Read(string file)
        {
            using var stream = typeof(FashionMnist).Assembly.GetManifestResourceStream("ModelDsl.Examples.Data." + file)
                ?? throw new InvalidOperationException($"The embedded data set file ModelDsl.Examples.Data.{file} is missing from the build.");
            return IdxFile.Read(stream, file);
        }
    }
}
