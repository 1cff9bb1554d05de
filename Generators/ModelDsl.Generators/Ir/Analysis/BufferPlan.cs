using System.Collections.Generic;
using System.Linq;
using ModelDsl.Generators.Helpers;

namespace ModelDsl.Generators.Ir.Analysis
{
    /// <summary>What a buffer of the plan holds.</summary>
    internal enum BufferKind
    {
        /// <summary>A graph input (ids, masks, pixels, targets).</summary>
        Input,
        /// <summary>An op's output that some backward op reads: one copy per layer, kept until the backward pass.</summary>
        Saved,
        /// <summary>An op's output no backward op reads: one copy, reused by every layer.</summary>
        Transient,
        /// <summary>Per-row statistics a forward op keeps for its backward (norm mean and 1/std, attention log-sum-exp).</summary>
        Statistic,
    }

    /// <summary>
    /// One buffer: its name ("DecoderLayer.h"), the shape of one copy, how many copies the plan allocates, the value it
    /// holds and, for a statistic, which one ("mean", "lse") of that value's op.
    /// </summary>
    internal sealed record Buffer(string Name, EquatableArray<Dim> Shape, ElementType Type, int Copies, BufferKind Kind, int Value, string? Statistic = null)
    {
        public int BytesPerElement => Type switch { ElementType.Int64 => 8, ElementType.Bool => 1, _ => 4 };

        public CostTerm Elements => CostTerms.Of(Name, Shape, Copies);
    }

    /// <summary>
    /// llm.c's idea (fill_in_parameter_sizes / fill_in_activation_sizes), derived from the schedule instead of written
    /// by hand: every tensor a training step needs, allocated once. Parameters, their gradients and AdamW's two
    /// moments are fixed; activations are polynomials in Batch and Time: an output a backward op reads is kept per
    /// layer, one nobody reads afterwards is a single reused buffer, a split's outputs are views of its input (no
    /// memory of their own). Sizes are in float32 elements except where a buffer says otherwise.
    /// </summary>
    internal sealed class BufferPlan
    {
        private BufferPlan(long parameters, IReadOnlyList<Buffer> buffers)
        {
            Parameters = parameters;
            Buffers = buffers;
        }

        /// <summary>Trainable scalars; the gradients and each AdamW moment have as many.</summary>
        public long Parameters { get; }

        /// <summary>Parameters + gradients + two AdamW moments.</summary>
        public long ParameterStateElements => 4 * Parameters;

        public IReadOnlyList<Buffer> Buffers { get; }

        /// <summary>The activation buffers (all but the inputs) as cost terms in elements.</summary>
        public EquatableArray<CostTerm> ActivationTerms
            => CostTerms.Merge(Buffers.Where(b => b.Kind != BufferKind.Input).Select(b => b.Elements));

        /// <summary>Activation bytes for given run-time sizes.</summary>
        public long ActivationBytes(int batch, int time, int sourceTime)
            => Buffers.Where(b => b.Kind != BufferKind.Input)
                      .Sum(b => Shape.Elements(b.Shape, batch, time, sourceTime) * b.Copies * b.BytesPerElement);

        public static BufferPlan Of(Schedule schedule)
        {
            var g = schedule.Graph;

            // A split's outputs are views: saving one of them keeps its input alive.
            var alias = new Dictionary<int, int>();
            foreach (var s in schedule.Forward.Where(s => s.Op is SplitOp))
                foreach (var o in s.Outputs) alias[o.Value] = s.Inputs[0].Value;
            int Storage(int value) => alias.TryGetValue(value, out var a) ? Storage(a) : value;

            var saved = new HashSet<int>(schedule.Backward.SelectMany(b => b.Saved).Select(r => Storage(r.Value)));
            var buffers = new List<Buffer>();
            foreach (var input in schedule.Inputs.Select(r => r.Value).Distinct())
                buffers.Add(new Buffer(g.Value(input).Name, g.Value(input).Shape, g.Value(input).Type, 1, BufferKind.Input, input));

            var names = new Dictionary<string, int>();
            string Unique(string name)
            {
                names.TryGetValue(name, out int n);
                names[name] = n + 1;
                return n == 0 ? name : name + " #" + (n + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            // Outputs grouped by value: the same value in every layer of a stack is one buffer with a copy per layer.
            var produced = schedule.Forward
                .SelectMany(s => s.Outputs.Select(o => (Step: s, Output: o)))
                .Where(p => !alias.ContainsKey(p.Output.Value))
                .GroupBy(p => p.Output.Value);
            foreach (var group in produced)
            {
                var first = group.First().Step;
                var value = g.Value(group.Key);
                string name = Unique(first.Function + "." + value.Name + " (" + first.Op.Kind + ")");
                int instances = group.Select(p => p.Output.Layer).Distinct().Count();
                bool isSaved = saved.Contains(group.Key);
                buffers.Add(new Buffer(name, value.Shape, value.Type, isSaved ? instances : 1, isSaved ? BufferKind.Saved : BufferKind.Transient, group.Key));
            }

            // Statistics: one buffer per statistic of each op, a copy per layer.
            foreach (var group in schedule.Backward.Where(b => b.Statistics.Count > 0).GroupBy(b => b.Forward.Op.Output()))
            {
                var step = group.First();
                string owner = step.Forward.Function + "." + g.Value(step.Forward.Op.Output()).Name + " (" + step.Forward.Op.Kind + ")";
                int instances = group.Select(b => b.Forward.Layer).Distinct().Count();
                foreach (var statistic in step.Statistics)
                    buffers.Add(new Buffer(Unique(owner + " " + statistic.Name), statistic.Shape, statistic.Type, instances, BufferKind.Statistic, step.Forward.Op.Output(), statistic.Name));
            }
            return new BufferPlan(g.ParameterCount, buffers);
        }
    }
}
