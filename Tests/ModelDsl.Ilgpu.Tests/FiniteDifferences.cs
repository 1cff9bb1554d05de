using System;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelDsl.Ilgpu.Tests
{
    /// <summary>Gradients by central differences of a float64 function: an independent check of hand-derived backward passes.</summary>
    internal static class FiniteDifferences
    {
        /// <summary>
        /// (f(.., x_i + step, ..) - f(.., x_i - step, ..)) / (2 step) for every element of every argument (float64 CPU
        /// tensors, left unchanged). The truncation error is O(step^2) times the third derivative.
        /// </summary>
        public static Tensor[] Gradients(Func<Tensor[], double> function, double step, params Tensor[] arguments)
        {
            var points = arguments.Select(a => a.to_type(ScalarType.Float64).clone().contiguous()).ToArray();
            var gradients = new Tensor[points.Length];
            for (int a = 0; a < points.Length; a++)
            {
                var values = points[a].view(-1).data<double>(); // writes through to points[a]
                var gradient = new double[values.Count];
                for (long i = 0; i < values.Count; i++)
                {
                    double original = values[i];
                    values[i] = original + step;
                    double above = function(points);
                    values[i] = original - step;
                    double below = function(points);
                    values[i] = original;
                    gradient[i] = (above - below) / (2 * step);
                }
                gradients[a] = tensor(gradient, points[a].shape, ScalarType.Float64);
            }
            return gradients;
        }
    }
}
