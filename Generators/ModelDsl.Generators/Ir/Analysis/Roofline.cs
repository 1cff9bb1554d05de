using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;

namespace ModelDsl.Generators.Ir.Analysis
{
    /// <summary>One kernel launch of a training step (all layers' instances summed): its FLOPs and the bytes it must move at least.</summary>
    internal sealed record KernelCost(string Kernel, string Where, int Launches, double Flops, double Bytes)
    {
        public double Intensity => Bytes > 0 ? Flops / Bytes : double.PositiveInfinity;
    }

    /// <summary>A machine for the roofline: FP32 SIMT peak and memory bandwidth.</summary>
    internal sealed record Machine(string Name, double PeakFlops, double Bandwidth)
    {
        /// <summary>
        /// An H100 SXM as ILGPU sees it: 66.9 TFLOP/s FP32 on the SIMT cores (ILGPU 1.5 has no tensor-core API) and
        /// ~3 TB/s of HBM3 (3.35 TB/s peak, ~90% reachable).
        /// </summary>
        public static readonly Machine H100 = new("H100 SXM (FP32 SIMT)", 66.9e12, 3.0e12);

        /// <summary>The launch's lower bound in seconds: the slower of compute and memory.</summary>
        public double Seconds(KernelCost cost) => Math.Max(cost.Flops / PeakFlops, cost.Bytes / Bandwidth);
    }

    /// <summary>
    /// A roofline estimate of a training step from the IR alone: for every kernel the ILGPU backend launches (forward,
    /// backward, optimizer), the FLOPs it does and the bytes it cannot avoid moving (each operand read once, each result
    /// written once, float32; a backward kernel that accumulates reads its destination too). Matrix products count 2
    /// FLOPs per multiply-add; flash attention counts the causal half it computes (4 B H T^2 D / 2 forward, 2.5 times
    /// that backward: the scores recomputed, then dV, dP, dQ, dK); element-wise kernels a handful of FLOPs per element.
    /// These are lower bounds to compare measured kernel times with, not predictions.
    /// </summary>
    internal static class Roofline
    {
        private const double F = 4; // bytes per float

        public static IReadOnlyList<KernelCost> Of(Schedule schedule, int batch, int time)
        {
            var g = schedule.Graph;
            var costs = new List<(string Kernel, string Where, double Flops, double Bytes)>();
            double Elements(ValueRef v) => Shape.Elements(g.Value(v.Value).Shape, batch, time, time);
            double Rows(ValueRef v) => Elements(v) / Math.Max(1, g.Value(v.Value).Shape[g.Value(v.Value).Shape.Count - 1].Size);
            double ParameterElements(Op op, int i) => op.HasParameter(i) ? g.Parameter(op.Parameter(i)).Elements : 0;
            // A linear layer that applies its activation in its epilogue writes both values in one pass (Fusion).
            var epilogues = g.Functions.ToDictionary(f => f.Name, Fusion.LinearActivations);
            bool IsEpilogue(ScheduledOp s) => epilogues[s.Function].Values.Contains(s.Op);

            foreach (var s in schedule.Forward)
            {
                string where = s.Function + "." + g.Value(s.Op.Output()).Name;
                void Add(string kernel, double flops, double bytes) => costs.Add((kernel, where, flops, bytes));
                switch (s.Op)
                {
                    case LinearOp:
                    {
                        double rows = Rows(s.Inputs[0]), w = ParameterElements(s.Op, 0), x = Elements(s.Inputs[0]), y = Elements(s.Outputs[0]);
                        if (epilogues[s.Function].ContainsKey(s.Op))
                            Add("MatmulActivation (forward)", 2 * rows * w + 20 * y, F * (x + w + 2 * y + ParameterElements(s.Op, 1)));
                        else
                            Add("Matmul (forward)", 2 * rows * w, F * (x + w + y + ParameterElements(s.Op, 1)));
                        Add("Matmul (dX)", 2 * rows * w, F * (y + w + 2 * x));
                        Add("Matmul (dW)", 2 * rows * w, F * (x + y + 2 * w));
                        if (s.Op.HasParameter(1)) Add("BiasBackward", y, F * (y + 2 * ParameterElements(s.Op, 1)));
                        break;
                    }
                    case AttentionOp a:
                    {
                        double q = Elements(s.Inputs[0]), k = Elements(s.Inputs[1]), v = Elements(s.Inputs[2]), o = Elements(s.Outputs[0]);
                        double lse = batch * (double)a.Heads * time;
                        double scores = batch * (double)a.Heads * time * time * a.HeadDim * (a.Mask == AttentionMask.Causal ? 0.5 : 1);
                        Add("AttentionForward", 4 * scores, F * (q + k + v + o + lse));
                        Add("AttentionBackward", 10 * scores, F * (q + k + v + 2 * o + lse + 2 * (q + k + v)));
                        break;
                    }
                    case NormOp:
                    {
                        double x = Elements(s.Inputs[0]), rows = Rows(s.Inputs[0]), w = ParameterElements(s.Op, 0) + ParameterElements(s.Op, 1);
                        Add("LayerNormForward", 8 * x, F * (2 * x + w + 2 * rows));
                        Add("LayerNormBackward", 14 * x, F * (4 * x + 3 * w + 2 * rows));
                        break;
                    }
                    case ActivationOp or GatedActivationOp:
                    {
                        double x = s.Inputs.Sum(Elements), y = Elements(s.Outputs[0]);
                        if (!IsEpilogue(s)) Add("Activation (forward)", 20 * y, F * (x + y));
                        Add("Activation (backward)", 30 * y, F * (y + 3 * x));
                        break;
                    }
                    case AddOp:
                    {
                        double y = Elements(s.Outputs[0]);
                        Add("Add", y, F * 3 * y);
                        Add("Accumulate (x2)", 2 * y, F * 6 * y);
                        break;
                    }
                    case EmbeddingOp:
                    {
                        double y = Elements(s.Outputs[0]);
                        Add("EmbeddingForward", 0, F * 2 * y + 4 * Rows(s.Outputs[0]));
                        Add("EmbeddingBackward", y, F * 3 * y);
                        break;
                    }
                    case LearnedPositionsOp:
                    {
                        double y = Elements(s.Outputs[0]);
                        Add("PositionsForward", y, F * 3 * y);
                        Add("PositionsBackward", y, F * 2 * y);
                        break;
                    }
                    case CrossEntropyOp:
                    {
                        double logits = Elements(s.Inputs[0]), rows = Rows(s.Inputs[0]);
                        Add("CrossEntropyForward", 4 * logits, F * (logits + rows) + 4 * rows);
                        Add("CrossEntropyBackward", 4 * logits, F * (3 * logits + rows) + 4 * rows);
                        break;
                    }
                }
            }
            double parameters = g.ParameterCount;
            costs.Add(("SumOfSquares", "all parameters", 2 * parameters, F * parameters));
            costs.Add(("AdamW", "all parameters", 14 * parameters, F * 7 * parameters));

            return costs.GroupBy(c => (c.Kernel, c.Where))
                .Select(group => new KernelCost(group.Key.Kernel, group.Key.Where, group.Count(), group.Sum(c => c.Flops), group.Sum(c => c.Bytes)))
                .ToList();
        }

        /// <summary>The estimate as a markdown table, kernels grouped over their call sites, largest time first.</summary>
        public static string Table(IReadOnlyList<KernelCost> costs, Machine machine, long tokens)
        {
            var kernels = costs.GroupBy(c => c.Kernel)
                .Select(k => new KernelCost(k.Key, string.Join(", ", k.Select(c => c.Where).Distinct()), k.Sum(c => c.Launches), k.Sum(c => c.Flops), k.Sum(c => c.Bytes)))
                .OrderByDescending(machine.Seconds).ToList();
            double total = kernels.Sum(machine.Seconds);
            var text = new StringBuilder();
            text.Append("| kernel | launches | GFLOP | MB moved | FLOP/byte | bound | lower bound (us) | share |\n");
            text.Append("|---|---:|---:|---:|---:|---|---:|---:|\n");
            foreach (var k in kernels)
            {
                bool compute = k.Flops / machine.PeakFlops >= k.Bytes / machine.Bandwidth;
                text.Append(string.Format(CultureInfo.InvariantCulture, "| {0} | {1} | {2:F2} | {3:F1} | {4:F1} | {5} | {6:F1} | {7:F0}% |\n",
                    k.Kernel, k.Launches, k.Flops / 1e9, k.Bytes / 1e6, k.Intensity, compute ? "compute" : "memory",
                    machine.Seconds(k) * 1e6, 100 * machine.Seconds(k) / total));
            }
            text.Append(string.Format(CultureInfo.InvariantCulture, "| **step** | {0} | {1:F1} | {2:F1} | | | **{3:F0}** | |\n",
                kernels.Sum(k => k.Launches), kernels.Sum(k => k.Flops) / 1e9, kernels.Sum(k => k.Bytes) / 1e6, total * 1e6));
            text.Append(string.Format(CultureInfo.InvariantCulture, "\nAt most {0:N0} tokens/s on {1} ({2:N0} tokens per step).\n", tokens / total, machine.Name, tokens));
            return text.ToString();
        }
    }
}
