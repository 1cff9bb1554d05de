using System;
using System.Linq;
using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Spec;

namespace ModelDsl.Generators.Ir
{
    /// <summary>What a tensor's elements are.</summary>
    internal enum ElementType { Float, Int64, Bool }

    /// <summary>What a graph input carries; the runtime binds each to the task's batch.</summary>
    internal enum InputRole
    {
        None,
        /// <summary>Token ids [Batch, Time] (int64).</summary>
        TokenIds,
        /// <summary>Segment (token-type) ids [Batch, Time] (int64).</summary>
        SegmentIds,
        /// <summary>Padding mask [Batch, Time]: true where a token is real (BERT's attention_mask).</summary>
        PaddingMask,
        /// <summary>Images [Batch, Channels, ImageSize, ImageSize].</summary>
        Pixels,
        /// <summary>The encoder's token ids [Batch, SourceTime] of an encoder-decoder.</summary>
        SourceIds,
        /// <summary>The encoder's padding mask [Batch, SourceTime].</summary>
        SourceMask,
        /// <summary>Target ids for the loss (int64; -100 is ignored).</summary>
        Targets,
    }

    /// <summary>A tensor in the graph. Names are what generated code calls it ("x", "qkv", "logits").</summary>
    internal sealed record Value(int Id, string Name, EquatableArray<Dim> Shape, ElementType Type = ElementType.Float, InputRole Role = InputRole.None)
    {
        public override string ToString() => Name + Ir.Shape.Format(Shape);
    }

    /// <summary>How a parameter is initialised: N(0, Std), zeros or ones. <see cref="StdExpression"/> is the formula
    /// generated code writes (over the model's constants), so the rule stays visible.</summary>
    internal sealed record InitRule(InitKind Kind, double Std = 0, string StdExpression = "")
    {
        public static readonly InitRule Zeros = new(InitKind.Zeros);
        public static readonly InitRule Ones = new(InitKind.Ones);

        public static InitRule Normal(double std, string expression) => new(InitKind.Normal, std, expression);
    }

    internal enum InitKind { Normal, Zeros, Ones }

    /// <summary>The kind of module a parameter belongs to; <see cref="Container"/> is a bare parameter of a container.</summary>
    internal enum ModuleKind { Container, Linear, Conv1D, LayerNorm, RmsNorm, Embedding, PatchConv }

    /// <summary>
    /// A trainable tensor. <see cref="ModulePath"/> is its module's Hugging Face path, with "{layer}" for the index in
    /// its stack and "{expert}" for the expert (e.g. "transformer.h.{layer}.attn.c_attn"); <see cref="Name"/> is the
    /// tensor's own name ("weight"). <see cref="Layers"/> lists the layers that hold it (empty: not per layer);
    /// <see cref="Experts"/> is the number of experts that each hold one (0: not per expert).
    /// </summary>
    internal sealed record Parameter(
        int Id,
        string ModulePath,
        string Name,
        ModuleKind Module,
        EquatableArray<Dim> Shape,
        InitRule Init,
        string? Stack,
        EquatableArray<int> Layers,
        int Experts)
    {
        public string Path => ModulePath.Length == 0 ? Name : ModulePath + "." + Name;

        public long Elements => Ir.Shape.StaticElements(Shape);

        public long Instances => Math.Max(1, Layers.Count) * (long)Math.Max(1, Experts);

        public long TotalElements => checked(Elements * Instances);

        /// <summary>The checkpoint name of one instance.</summary>
        public string PathAt(int layer, int expert = 0)
            => Path.Replace("{layer}", layer.ToString(System.Globalization.CultureInfo.InvariantCulture))
                   .Replace("{expert}", expert.ToString(System.Globalization.CultureInfo.InvariantCulture));

        /// <summary>Every checkpoint name this parameter stands for.</summary>
        public System.Collections.Generic.IEnumerable<string> InstancePaths()
        {
            var layers = Layers.Count == 0 ? new[] { 0 } : Layers.ToArray();
            foreach (var layer in layers)
                for (int e = 0; e < Math.Max(1, Experts); e++)
                    yield return PathAt(layer, e);
        }
    }

    /// <summary>
    /// A named sub-graph with formal inputs and outputs, called by <see cref="CallOp"/> or repeated by
    /// <see cref="RepeatOp"/>. The TorchSharp backend writes one method per function; the ILGPU backend inlines them
    /// into a flat schedule. <see cref="Stack"/> is set for a stack's layer body (and the functions it calls): its
    /// parameters are indexed by the layer.
    /// </summary>
    internal sealed record Function(
        string Name,
        string Summary,
        EquatableArray<int> Inputs,
        EquatableArray<int> Outputs,
        EquatableArray<Op> Ops,
        string? Stack);

    /// <summary>
    /// A stack of layers: <see cref="Layers"/> repetitions, where layer i runs function
    /// <see cref="Variants"/>[<see cref="VariantOfLayer"/>[i]] (Switch-style stacks alternate a dense and a
    /// mixture-of-experts layer). <see cref="Name"/> is what "{layer}" indexes ("Decoder", "Encoder").
    /// </summary>
    internal sealed record Stack(string Name, int Layers, EquatableArray<string> Variants, EquatableArray<int> VariantOfLayer)
    {
        public System.Collections.Generic.IEnumerable<int> LayersOf(string variant)
        {
            int v = Variants.AsImmutableArray().IndexOf(variant);
            for (int i = 0; i < Layers; i++)
                if (VariantOfLayer[i] == v) yield return i;
        }
    }

    /// <summary>A container module of the checkpoint layout and its Hugging Face class name ("transformer.h.{layer}" is "GPT2Block").</summary>
    internal sealed record ContainerInfo(string Path, string ClassName);

    /// <summary>The task a model's head serves; it decides the runtime base class and the inputs.</summary>
    internal enum ModelTask { CausalLanguageModel, MaskedLanguageModel, SequenceClassification, SequenceToSequence, ImageClassification }

    /// <summary>
    /// The computation of one declared model: values, parameters (with Hugging Face names), functions of ops, stacks
    /// and the checkpoint layout's container classes. <see cref="Functions"/>[0] is the forward pass from the graph
    /// inputs to the logits; the function named <see cref="LossFunction"/> computes the task loss from the logits and
    /// the targets. Everything every backend needs is here or derived from here (Analysis/).
    /// </summary>
    internal sealed record ModelGraph(
        ModelSpec Spec,
        string Layout,
        ModelTask Task,
        EquatableArray<Value> Values,
        EquatableArray<Parameter> Parameters,
        EquatableArray<Function> Functions,
        EquatableArray<Stack> Stacks,
        EquatableArray<ContainerInfo> Containers)
    {
        public const string ForwardFunction = "Logits";
        public const string LossFunction = "TaskLoss";

        public Function Forward => Functions[0];

        public Function Loss => Function(LossFunction);

        public Value Value(int id) => Values[id];

        public Parameter Parameter(int id) => Parameters[id];

        public Function Function(string name) => Functions.First(f => f.Name == name);

        public Stack Stack(string name) => Stacks.First(s => s.Name == name);

        /// <summary>Trainable scalars, tied tensors once (a tied head uses the embedding's parameter).</summary>
        public long ParameterCount => Parameters.Sum(p => p.TotalElements);

        /// <summary>Every op of every function, with the function it is in.</summary>
        public System.Collections.Generic.IEnumerable<(Function Function, Op Op)> AllOps()
            => Functions.SelectMany(f => f.Ops.Select(op => (f, op)));
    }
}
