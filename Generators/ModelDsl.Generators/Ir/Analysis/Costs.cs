using System;
using System.Collections.Generic;
using System.Linq;
using ModelDsl.Generators.Helpers;

namespace ModelDsl.Generators.Ir.Analysis
{
    /// <summary>
    /// A cost that scales with the run-time sizes: Coefficient x Batch^B x Time^T x SourceTime^S (Time also counts
    /// KeyTime, the attended positions, which equal Time in a full forward pass).
    /// </summary>
    internal sealed record CostTerm(string Name, long Coefficient, int Batch, int Time, int SourceTime)
    {
        public double At(long batch, long time, long sourceTime)
            => Coefficient * Math.Pow(batch, Batch) * Math.Pow(time, Time) * Math.Pow(sourceTime, SourceTime);
    }

    /// <summary>Sums of cost terms, merged by name and powers.</summary>
    internal static class CostTerms
    {
        public static EquatableArray<CostTerm> Merge(IEnumerable<CostTerm> terms)
            => terms.Where(t => t.Coefficient != 0)
                .GroupBy(t => (t.Name, t.Batch, t.Time, t.SourceTime))
                .Select(g => new CostTerm(g.Key.Name, g.Sum(t => t.Coefficient), g.Key.Batch, g.Key.Time, g.Key.SourceTime))
                .ToEquatableArray();

        public static double At(IEnumerable<CostTerm> terms, long batch, long time, long sourceTime)
            => terms.Sum(t => t.At(batch, time, sourceTime));

        /// <summary>Coefficient x the monomial of a shape.</summary>
        public static CostTerm Of(string name, EquatableArray<Dim> rows, long perRow)
        {
            var (b, t, s, c) = Shape.Monomial(rows);
            return new CostTerm(name, checked(c * perRow), b, t, s);
        }
    }

    /// <summary>
    /// Forward FLOPs from the schedule, counting multiply-adds as two FLOPs in matrix products only (the convention
    /// of the PaLM paper's appendix B, which the model card used before): linear layers 2 x in x out per row, LoRA
    /// 2 x rank x (in + out), attention 4 x keys x Heads x HeadDim per query (scores and weighted values, the causal
    /// half not discounted), routers 2 x Hidden x Experts, experts TopK x 2 x Hidden x Inner x (2, or 3 gated) per
    /// token, patch embedding 2 x Channels x PatchSize^2 x Hidden per patch. Element-wise work is left out.
    /// A training step costs about three times the forward FLOPs.
    /// </summary>
    internal static class Flops
    {
        public static EquatableArray<CostTerm> Forward(Schedule schedule)
        {
            var g = schedule.Graph;
            var terms = new List<CostTerm>();
            foreach (var s in schedule.Forward)
            {
                string name = s.Function + "." + g.Value(s.Op.Output()).Name;
                EquatableArray<Dim> Rows(int input) => g.Value(s.Inputs[input].Value).Shape.Take(g.Value(s.Inputs[input].Value).Shape.Count - 1).ToEquatableArray();
                long Width(int parameter, int axis) => g.Parameter(s.Op.Parameter(parameter)).Shape[axis].Size;
                switch (s.Op)
                {
                    case LinearOp:
                        terms.Add(CostTerms.Of(name, Rows(0), 2 * Width(0, 0) * Width(0, 1)));
                        break;
                    case LowRankOp:
                        terms.Add(CostTerms.Of(name, Rows(0), 2 * Width(0, 0) * (Width(0, 1) + Width(1, 0))));
                        break;
                    case AttentionOp a:
                        // Per query, every key: the keys' axis is Time, KeyTime, SourceTime or static (ViT's Patches+1).
                        var keys = g.Value(s.Inputs[1].Value).Shape[1];
                        terms.Add(CostTerms.Of(name, Rows(0).Append(keys).ToEquatableArray(), 4L * a.Heads * a.HeadDim));
                        break;
                    case RouterOp:
                        terms.Add(CostTerms.Of(name, Rows(0), 2 * Width(0, 0) * Width(0, 1)));
                        break;
                    case ExpertsOp e:
                        long perExpert = 2L * g.Spec.Hidden * g.Spec.Inner * (e.Gated ? 3 : 2);
                        terms.Add(CostTerms.Of(name, Rows(0), g.Spec.Experts!.TopK * perExpert));
                        break;
                    case PatchEmbeddingOp:
                        var p = g.Parameter(s.Op.Parameter(0)).Shape;
                        terms.Add(CostTerms.Of(name, g.Value(s.Outputs[0].Value).Shape.Take(2).ToEquatableArray(), 2L * p[0].Size * p[1].Size * p[2].Size * p[3].Size));
                        break;
                }
            }
            return CostTerms.Merge(terms);
        }
    }
}
