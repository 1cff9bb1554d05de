namespace ModelDsl.Ilgpu
{
    /// <summary>How a parameter starts: N(0, Std), zeros or ones (the declaration's initialisation scheme).</summary>
    public enum InitKind { Normal, Zeros, Ones }

    /// <summary>
    /// One parameter of a generated model, as the op graph describes it: its Hugging Face name ("{layer}" standing
    /// for the layer index), the shape of one instance, how many layers hold one (0: not per layer) and its
    /// initialisation.
    /// </summary>
    public sealed record ParameterInfo(string Name, long[] Shape, int Layers, InitKind Init, double Std = 0)
    {
        public static ParameterInfo Normal(string name, long[] shape, int layers, double std) => new(name, shape, layers, InitKind.Normal, std);

        public static ParameterInfo Zeros(string name, long[] shape, int layers) => new(name, shape, layers, InitKind.Zeros);

        public static ParameterInfo Ones(string name, long[] shape, int layers) => new(name, shape, layers, InitKind.Ones);

        public long Elements
        {
            get
            {
                long n = 1;
                foreach (var d in Shape) n = checked(n * d);
                return n;
            }
        }

        /// <summary>AdamW decays matrices (and higher), not gains, biases or other vectors, as the TorchSharp trainer does.</summary>
        public bool Decayed => Shape.Length >= 2;

        /// <summary>The checkpoint name of the instance in <paramref name="layer"/>.</summary>
        public string NameAt(int layer) => Layers == 0 ? Name : Name.Replace("{layer}", layer.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }
}
