using System.Collections.Generic;
using System.Globalization;

namespace ModelDsl.Ilgpu
{
    /// <summary>How a parameter starts: N(0, Std), zeros or ones (the declaration's initialisation scheme).</summary>
    public enum InitKind { Normal, Zeros, Ones }

    /// <summary>
    /// One parameter of a generated model, as the op graph describes it: its Hugging Face name ("{layer}" standing
    /// for the layer index, "{expert}" for the expert), the shape of one instance, how many layers hold one (0: not
    /// per layer), how many experts of each layer hold one (0: not per expert), its initialisation, and whether it is a
    /// LoRA adapter (lora_A, lora_B: what trains when the base is frozen). In a stack whose layers differ (Switch's
    /// sparse layers between dense ones) a parameter may be held by some layers only: <see cref="AtLayers"/> lists them.
    /// </summary>
    public sealed record ParameterInfo(string Name, long[] Shape, int Layers, InitKind Init, double Std = 0, int Experts = 0, bool Adapter = false, int[]? AtLayers = null)
    {
        public static ParameterInfo Normal(string name, long[] shape, int layers, double std, int experts = 0, bool adapter = false, int[]? atLayers = null)
            => new(name, shape, layers, InitKind.Normal, std, experts, adapter, atLayers);

        public static ParameterInfo Zeros(string name, long[] shape, int layers, int experts = 0, bool adapter = false, int[]? atLayers = null)
            => new(name, shape, layers, InitKind.Zeros, Experts: experts, Adapter: adapter, AtLayers: atLayers);

        public static ParameterInfo Ones(string name, long[] shape, int layers, int experts = 0, int[]? atLayers = null)
            => new(name, shape, layers, InitKind.Ones, Experts: experts, AtLayers: atLayers);

        /// <summary>The layers that hold one (every layer of the stack unless <see cref="AtLayers"/> says otherwise; { 0 } when not per layer).</summary>
        public IReadOnlyList<int> LayerIndices
        {
            get
            {
                if (AtLayers is not null) return AtLayers;
                var all = new int[System.Math.Max(1, Layers)];
                for (int i = 0; i < all.Length; i++) all[i] = i;
                return all;
            }
        }

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

        /// <summary>The checkpoint name of the instance of <paramref name="expert"/> in <paramref name="layer"/>.</summary>
        public string NameAt(int layer, int expert = 0)
            => Name.Replace("{layer}", layer.ToString(CultureInfo.InvariantCulture)).Replace("{expert}", expert.ToString(CultureInfo.InvariantCulture));

        /// <summary>Every instance's checkpoint name, layer by layer and within a layer expert by expert (the store's order).</summary>
        public IEnumerable<string> InstanceNames()
        {
            foreach (int layer in LayerIndices)
                for (int expert = 0; expert < System.Math.Max(1, Experts); expert++)
                    yield return NameAt(layer, expert);
        }
    }
}
