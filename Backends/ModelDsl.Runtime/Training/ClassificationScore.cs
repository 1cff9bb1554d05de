using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace ModelDsl.Training
{
    /// <summary>
    /// How well predicted classes match labels: accuracy, balanced accuracy (the mean of the per-class recalls, which a
    /// classifier cannot raise by favouring the largest class), the confusion matrix, and the majority-class baseline
    /// (the accuracy of always answering the class most frequent in the labels of a reference set).
    /// </summary>
    public sealed class ClassificationScore
    {
        private ClassificationScore(long[,] confusion, double majorityBaseline)
        {
            Confusion = confusion;
            int classes = confusion.GetLength(0);
            long total = 0, correct = 0;
            var recalls = new List<double>();
            for (int c = 0; c < classes; c++)
            {
                long row = 0;
                for (int p = 0; p < classes; p++) row += confusion[c, p];
                total += row;
                correct += confusion[c, c];
                if (row > 0) recalls.Add((double)confusion[c, c] / row);
            }
            Count = total;
            Accuracy = total == 0 ? 0 : (double)correct / total;
            BalancedAccuracy = recalls.Count == 0 ? 0 : recalls.Average();
            MajorityBaseline = majorityBaseline;
        }

        /// <summary>
        /// Scores <paramref name="predicted"/> against <paramref name="labels"/> (both in [0, <paramref name="classes"/>));
        /// the majority baseline answers the most frequent class of <paramref name="baselineLabels"/> (the training
        /// labels: a baseline must not peek at the test set), or of <paramref name="labels"/> when null.
        /// </summary>
        /// <exception cref="ArgumentException">The lists differ in length, are empty, or hold a class outside the range.</exception>
        public static ClassificationScore Of(IReadOnlyList<int> labels, IReadOnlyList<int> predicted, int classes, IReadOnlyList<int>? baselineLabels = null)
        {
            ArgumentNullException.ThrowIfNull(labels);
            ArgumentNullException.ThrowIfNull(predicted);
            if (classes <= 0) throw new ArgumentOutOfRangeException(nameof(classes), classes, "There must be at least one class.");
            if (labels.Count != predicted.Count || labels.Count == 0)
                throw new ArgumentException($"Need as many predictions as labels, at least one: {predicted.Count} predictions for {labels.Count} labels.", nameof(predicted));
            var confusion = new long[classes, classes];
            for (int i = 0; i < labels.Count; i++)
            {
                Check(labels[i], classes, i, nameof(labels));
                Check(predicted[i], classes, i, nameof(predicted));
                confusion[labels[i], predicted[i]]++;
            }
            var reference = baselineLabels ?? labels;
            var counts = new long[classes];
            for (int i = 0; i < reference.Count; i++)
            {
                Check(reference[i], classes, i, nameof(baselineLabels));
                counts[reference[i]]++;
            }
            int majority = Array.IndexOf(counts, counts.Max());
            double baseline = (double)labels.Count(l => l == majority) / labels.Count;
            return new ClassificationScore(confusion, baseline);
        }

        private static void Check(int value, int classes, int index, string what)
        {
            if ((uint)value >= (uint)classes)
                throw new ArgumentException($"{what}[{index}] = {value} is outside the classes [0, {classes}).", what);
        }

        /// <summary>Examples scored.</summary>
        public long Count { get; }

        /// <summary>Share of correct predictions.</summary>
        public double Accuracy { get; }

        /// <summary>Mean recall over the classes present in the labels.</summary>
        public double BalancedAccuracy { get; }

        /// <summary>Accuracy of always predicting the majority class of the baseline labels.</summary>
        public double MajorityBaseline { get; }

        /// <summary>Confusion[label, predicted] counts.</summary>
        public long[,] Confusion { get; }

        /// <inheritdoc />
        public override string ToString() => string.Format(CultureInfo.InvariantCulture,
            "accuracy {0:P1}, balanced accuracy {1:P1} on {2} examples (majority-class baseline {3:P1})", Accuracy, BalancedAccuracy, Count, MajorityBaseline);
    }
}
