using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;

namespace ModelDsl.Training
{
    /// <summary>Counts of (true class, predicted class) pairs of a classifier's predictions, with accuracy overall and per class.</summary>
    public sealed class ConfusionMatrix
    {
        private readonly long[,] counts;

        /// <summary>An empty matrix over classes named <paramref name="classNames"/> (their order is the label order).</summary>
        public ConfusionMatrix(IReadOnlyList<string> classNames)
        {
            ArgumentNullException.ThrowIfNull(classNames);
            if (classNames.Count == 0) throw new ArgumentException("A classifier has at least one class.", nameof(classNames));
            ClassNames = classNames;
            counts = new long[classNames.Count, classNames.Count];
        }

        public IReadOnlyList<string> ClassNames { get; }

        public int Classes => ClassNames.Count;

        /// <summary>Predictions counted.</summary>
        public long Total { get; private set; }

        /// <summary>How often class <paramref name="actual"/> was predicted as <paramref name="predicted"/>.</summary>
        public long this[int actual, int predicted] => counts[actual, predicted];

        /// <summary>Counts one prediction.</summary>
        /// <exception cref="ArgumentOutOfRangeException">A class is not in [0, Classes).</exception>
        public void Add(int actual, int predicted)
        {
            if ((uint)actual >= (uint)Classes) throw new ArgumentOutOfRangeException(nameof(actual), actual, $"Classes are 0 .. {Classes - 1}.");
            if ((uint)predicted >= (uint)Classes) throw new ArgumentOutOfRangeException(nameof(predicted), predicted, $"Classes are 0 .. {Classes - 1}.");
            counts[actual, predicted]++;
            Total++;
        }

        /// <summary>The fraction of predictions that were right (NaN before any).</summary>
        public double Accuracy => Total == 0 ? double.NaN : Enumerable.Range(0, Classes).Sum(c => counts[c, c]) / (double)Total;

        /// <summary>Images of class <paramref name="actual"/> counted.</summary>
        public long Support(int actual) => Enumerable.Range(0, Classes).Sum(p => counts[actual, p]);

        /// <summary>The fraction of class <paramref name="actual"/> predicted right (its recall; NaN when it never occurred).</summary>
        public double ClassAccuracy(int actual) => Support(actual) == 0 ? double.NaN : counts[actual, actual] / (double)Support(actual);

        /// <summary>The most frequent wrong prediction: (actual, predicted, count), or null when every prediction was right.</summary>
        public (int Actual, int Predicted, long Count)? MostConfused()
        {
            (int, int, long)? worst = null;
            for (int a = 0; a < Classes; a++)
                for (int p = 0; p < Classes; p++)
                    if (a != p && counts[a, p] > 0 && (worst is null || counts[a, p] > worst.Value.Item3))
                        worst = (a, p, counts[a, p]);
            return worst;
        }

        /// <summary>A table: one row per true class with its count, accuracy and predictions per class (culture-invariant).</summary>
        public override string ToString()
        {
            const string predicted = "predicted:";
            int nameWidth = Math.Max(6, ClassNames.Max(n => n.Length));
            int cell = Math.Max(5, Total.ToString(CultureInfo.InvariantCulture).Length + 1);
            var text = new StringBuilder();
            text.Append(CultureInfo.InvariantCulture, $"{"actual".PadRight(nameWidth)} | {"images",6} {"acc.",7} | {predicted}");
            for (int p = 0; p < Classes; p++) text.Append(p.ToString(CultureInfo.InvariantCulture).PadLeft(cell));
            text.AppendLine();
            for (int a = 0; a < Classes; a++)
            {
                text.Append(CultureInfo.InvariantCulture, $"{ClassNames[a].PadRight(nameWidth)} | {Support(a),6} {ClassAccuracy(a),7:P1} | {"".PadRight(predicted.Length)}");
                for (int p = 0; p < Classes; p++) text.Append(counts[a, p].ToString(CultureInfo.InvariantCulture).PadLeft(cell));
                text.AppendLine();
            }
            text.Append(CultureInfo.InvariantCulture, $"{"all".PadRight(nameWidth)} | {Total,6} {Accuracy,7:P1} |");
            return text.ToString();
        }
    }
}
