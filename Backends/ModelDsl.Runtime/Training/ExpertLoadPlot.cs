using System;
using System.Collections.Generic;
using System.Linq;
using ScottPlot;

namespace ModelDsl.Training
{
    /// <summary>
    /// A mixture-of-experts model's routing measured at one training step: for each sparse layer, each expert's share of
    /// the routing slots (tokens x TopK), so the shares of a layer sum to one and perfect balance is 1 / Experts.
    /// </summary>
    public sealed record ExpertLoad(int Step, IReadOnlyDictionary<int, double[]> Shares)
    {
        /// <summary>Shares from each layer's tokens per expert, divided by the layer's total.</summary>
        public static ExpertLoad FromCounts(int step, IReadOnlyDictionary<int, long[]> tokensPerExpert)
        {
            ArgumentNullException.ThrowIfNull(tokensPerExpert);
            var shares = new SortedDictionary<int, double[]>();
            foreach (var (layer, counts) in tokensPerExpert)
            {
                double total = counts.Sum();
                if (total <= 0) throw new ArgumentException($"Layer {layer} routed no token.", nameof(tokensPerExpert));
                shares[layer] = counts.Select(c => c / total).ToArray();
            }
            return new ExpertLoad(step, shares);
        }
    }

    /// <summary>PNG plots of expert load (ScottPlot): the shares per layer at one step, and the spread of shares over training.</summary>
    public static class ExpertLoadPlot
    {
        private static readonly Color[] Palette =
        {
            Colors.SteelBlue, Colors.OrangeRed, Colors.SeaGreen, Colors.DarkGoldenRod, Colors.MediumPurple, Colors.Sienna, Colors.DeepPink, Colors.Gray,
        };

        /// <summary>
        /// Grouped bars: for each layer, each expert's share of the routing slots at <paramref name="load"/>'s step, with a
        /// dashed line at 1 / Experts (perfect balance).
        /// </summary>
        public static void SaveShares(string path, ExpertLoad load, string title, int width = 1000, int height = 600)
        {
            ArgumentNullException.ThrowIfNull(path);
            ArgumentNullException.ThrowIfNull(load);
            int experts = Experts(new[] { load });
            var plot = new Plot();
            var layers = load.Shares.Keys.ToList();
            var bars = new List<Bar>();
            for (int i = 0; i < layers.Count; i++)
                for (int e = 0; e < experts; e++)
                    bars.Add(new Bar
                    {
                        Position = i * (experts + 1) + e,
                        Value = load.Shares[layers[i]][e],
                        FillColor = Palette[e % Palette.Length],
                        Size = 0.9,
                    });
            plot.Add.Bars(bars);
            for (int e = 0; e < experts; e++)
                plot.Legend.ManualItems.Add(new LegendItem { LabelText = $"expert {e}", FillColor = Palette[e % Palette.Length] });
            Balanced(plot, experts);
            plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
                layers.Select((_, i) => i * (experts + 1) + (experts - 1) / 2.0).ToArray(),
                layers.Select(l => $"layer {l}").ToArray());
            plot.YLabel("share of routing slots");
            plot.Title(title);
            plot.ShowLegend(Alignment.UpperRight);
            plot.Axes.AutoScale();
            // Head room above the tallest bar for the legend.
            plot.Axes.SetLimitsY(0, Math.Max(1.5 / experts, load.Shares.Values.SelectMany(s => s).Max() * 1.4));
            PngFile.Save(plot, path, width, height);
        }

        /// <summary>
        /// Over training: for each layer, the busiest and the idlest expert's share of the routing slots at every
        /// measurement (solid and dashed lines in the layer's colour), with a dashed line at 1 / Experts.
        /// </summary>
        public static void SaveOverTraining(string path, IReadOnlyList<ExpertLoad> loads, string title, int width = 1000, int height = 600)
        {
            ArgumentNullException.ThrowIfNull(path);
            ArgumentNullException.ThrowIfNull(loads);
            if (loads.Count == 0) throw new ArgumentException("There is no measurement to plot.", nameof(loads));
            int experts = Experts(loads);
            var plot = new Plot();
            double[] steps = loads.Select(l => (double)l.Step).ToArray();
            int colour = 0;
            foreach (int layer in loads[0].Shares.Keys)
            {
                var color = Palette[colour++ % Palette.Length];
                var busiest = plot.Add.Scatter(steps, loads.Select(l => l.Shares[layer].Max()).ToArray());
                busiest.LegendText = $"layer {layer}: busiest expert";
                busiest.Color = color;
                busiest.LineWidth = 2;
                var idlest = plot.Add.Scatter(steps, loads.Select(l => l.Shares[layer].Min()).ToArray());
                idlest.LegendText = $"layer {layer}: idlest expert";
                idlest.Color = color;
                idlest.LinePattern = LinePattern.Dotted;
                idlest.LineWidth = 2;
            }
            Balanced(plot, experts);
            plot.XLabel("step");
            plot.YLabel("share of routing slots");
            plot.Title(title);
            plot.ShowLegend(Alignment.UpperRight);
            plot.Axes.AutoScale();
            plot.Axes.SetLimitsY(0, Math.Max(1.5 / experts, loads.SelectMany(l => l.Shares.Values).SelectMany(s => s).Max() * 1.15));
            PngFile.Save(plot, path, width, height);
        }

        private static int Experts(IEnumerable<ExpertLoad> loads)
        {
            var counts = loads.SelectMany(l => l.Shares.Values).Select(s => s.Length).Distinct().ToList();
            if (counts.Count != 1 || counts[0] == 0)
                throw new ArgumentException("Every layer of every measurement must have the same, non-zero number of experts.", nameof(loads));
            return counts[0];
        }

        private static void Balanced(Plot plot, int experts)
        {
            var line = plot.Add.HorizontalLine(1.0 / experts);
            line.LegendText = $"balanced (1/{experts})";
            line.Color = Colors.Black;
            line.LinePattern = LinePattern.Dashed;
            line.LineWidth = 1.5f;
        }
    }
}
