using System;
using System.Collections.Generic;
using System.Linq;
using ScottPlot;

namespace ModelDsl.Training
{
    /// <summary>A horizontal reference line on a loss plot (e.g. the unigram entropy the model must beat).</summary>
    public readonly record struct ReferenceLine(string Label, double Loss);

    /// <summary>
    /// Writes a PNG of a training run's loss curves with ScottPlot: the raw train loss (faint), its smoothed
    /// curve, the validation points and optional horizontal reference lines, in nats per item (token, image) against steps.
    /// </summary>
    public static class LossPlot
    {
        /// <summary>Plots <paramref name="report"/> to <paramref name="path"/> (written atomically).</summary>
        public static void Save(string path, TrainingReport report, IEnumerable<ReferenceLine>? references = null,
            string? title = null, int width = 1000, int height = 600)
        {
            ArgumentNullException.ThrowIfNull(report);
            // The loss is a mean over the task's items: "tokens" -> per token, "images" -> per image.
            string item = report.ItemName.EndsWith('s') ? report.ItemName[..^1] : report.ItemName;
            Save(path, report.TrainLosses, report.Evaluations, references, title ?? $"{report.ModelName} training loss", width, height, item);
        }

        /// <summary>
        /// Plots train losses (one per step, step i at x = i + 1) and validation points to <paramref name="path"/>;
        /// <paramref name="item"/> is what the loss is a mean over.
        /// </summary>
        public static void Save(string path, IReadOnlyList<double> trainLosses, IReadOnlyList<EvaluationPoint> evaluations,
            IEnumerable<ReferenceLine>? references = null, string? title = null, int width = 1000, int height = 600, string item = "token")
        {
            ArgumentNullException.ThrowIfNull(path);
            ArgumentNullException.ThrowIfNull(trainLosses);
            ArgumentNullException.ThrowIfNull(evaluations);
            if (width < 100 || height < 100) throw new ArgumentOutOfRangeException(nameof(width), "The plot must be at least 100 x 100 pixels.");

            var plot = new Plot();
            if (trainLosses.Count > 0)
            {
                double[] steps = Enumerable.Range(1, trainLosses.Count).Select(i => (double)i).ToArray();
                var raw = plot.Add.ScatterLine(steps, trainLosses.ToArray());
                raw.LegendText = "train loss";
                raw.Color = Colors.SteelBlue.WithAlpha(0.3);
                raw.LineWidth = 1;

                var smooth = plot.Add.ScatterLine(steps, LossSmoother.Smooth(trainLosses));
                smooth.LegendText = "train loss (smoothed)";
                smooth.Color = Colors.SteelBlue;
                smooth.LineWidth = 2;
            }
            if (evaluations.Count > 0)
            {
                var validation = plot.Add.Scatter(
                    evaluations.Select(e => (double)e.Step).ToArray(), evaluations.Select(e => e.Loss).ToArray());
                validation.LegendText = "validation loss";
                validation.Color = Colors.OrangeRed;
                validation.LineWidth = 1.5f;
                validation.MarkerSize = 7;
            }
            var palette = new[] { Colors.Gray, Colors.DarkGreen, Colors.Purple, Colors.Brown };
            int r = 0;
            foreach (var reference in references ?? Array.Empty<ReferenceLine>())
            {
                var line = plot.Add.HorizontalLine(reference.Loss);
                line.LegendText = $"{reference.Label} ({reference.Loss:F3})";
                line.Color = palette[r++ % palette.Length];
                line.LinePattern = LinePattern.Dashed;
                line.LineWidth = 1.5f;
            }

            plot.XLabel("step");
            plot.YLabel($"loss (nats/{item})");
            if (!string.IsNullOrEmpty(title)) plot.Title(title);
            plot.ShowLegend(Alignment.UpperRight);
            plot.Axes.AutoScale();
            // The first steps sit near ln(vocab) and would flatten the rest: start the axis near the interesting range.
            if (trainLosses.Count > 20)
            {
                double low = Math.Min(trainLosses.Min(), evaluations.Count > 0 ? evaluations.Min(e => e.Loss) : double.MaxValue);
                double high = trainLosses.Take(Math.Max(1, trainLosses.Count / 50)).Max();
                foreach (var reference in references ?? Array.Empty<ReferenceLine>()) high = Math.Max(high, reference.Loss);
                if (double.IsFinite(low) && double.IsFinite(high) && high > low)
                    plot.Axes.SetLimitsY(Math.Max(0, low - 0.05 * (high - low)), high + 0.05 * (high - low));
            }

            PngFile.Save(plot, path, width, height);
        }
    }
}
