using System;
using System.Collections.Generic;
using System.Linq;
using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Ir.Layouts;
using ModelDsl.Generators.Spec;
using ModelDsl.Generators.Validation;

namespace ModelDsl.Generators.Ir
{
    /// <summary>An op whose inputs do not fit: names the op, the tensor and the dimension.</summary>
    internal sealed class GraphShapeException : Exception
    {
        public GraphShapeException(string message) : base(message) { }
    }

    /// <summary>
    /// Collects values, parameters, stacks and functions into a <see cref="ModelGraph"/>. Parameters are created for
    /// roles, so their names come from the checkpoint layout and nowhere else; ops are added through
    /// <see cref="FunctionBuilder"/>, which infers and checks every output shape.
    /// </summary>
    internal sealed class GraphBuilder
    {
        private readonly List<Value> values = new();
        private readonly List<Parameter> parameters = new();
        private readonly List<Function> functions = new();
        private readonly List<Stack> stacks = new();

        public GraphBuilder(ModelSpec spec)
        {
            Spec = spec;
            Dims = new Dims(spec);
            Layout = CheckpointLayout.Of(spec);
        }

        public ModelSpec Spec { get; }

        public Dims Dims { get; }

        public CheckpointLayout Layout { get; }

        internal Value Value(int id) => values[id];

        internal Parameter Parameter(int id) => parameters[id];

        internal Function Function(string name) => functions.FirstOrDefault(f => f.Name == name)
            ?? throw new InvalidOperationException($"No function '{name}' yet.");

        internal Stack Stack(string name) => stacks.First(s => s.Name == name);

        internal int NewValue(string name, EquatableArray<Dim> shape, ElementType type = ElementType.Float, InputRole role = InputRole.None)
        {
            values.Add(new Value(values.Count, name, shape, type, role));
            return values.Count - 1;
        }

        /// <summary>A stack of <paramref name="layers"/> layers; <paramref name="variantOfLayer"/> picks each layer's body among <paramref name="variants"/>.</summary>
        public Stack DefineStack(string name, int layers, string[] variants, Func<int, int> variantOfLayer)
        {
            var stack = new Stack(name, layers, variants.ToEquatableArray(),
                Enumerable.Range(0, layers).Select(variantOfLayer).ToEquatableArray());
            stacks.Add(stack);
            return stack;
        }

        /// <summary>Starts a function; in a stack's layer body, pass the stack and the variant (parameters are per layer).</summary>
        public FunctionBuilder Begin(string name, string summary, string? stack = null, string? variant = null)
            => new(this, name, summary, stack, variant);

        internal void Add(Function function)
        {
            if (functions.Any(f => f.Name == function.Name))
                throw new InvalidOperationException($"Function '{function.Name}' is defined twice.");
            functions.Add(function);
        }

        /// <summary>A parameter at a path (module path and tensor name), per layer of the function's stack when it has one.</summary>
        internal int NewParameter(FunctionBuilder scope, string modulePath, string name, ModuleKind module, EquatableArray<Dim> shape, InitRule init, int experts = 0)
        {
            bool perLayer = modulePath.Contains(CheckpointLayout.LayerIndex);
            if (perLayer && scope.Stack is null)
                throw new InvalidOperationException($"'{modulePath}' is per layer but '{scope.Name}' is not a layer body.");
            var layers = !perLayer ? EquatableArray<int>.Empty
                : scope.Variant is null ? Enumerable.Range(0, Stack(scope.Stack!).Layers).ToEquatableArray()
                : Stack(scope.Stack!).LayersOf(scope.Variant).ToEquatableArray();
            var parameter = new Parameter(parameters.Count, modulePath, name, module, shape, init, perLayer ? scope.Stack : null, layers, experts);
            var clash = parameters.FirstOrDefault(p => p.Path == parameter.Path);
            if (clash is not null)
            {
                // The same tensor reached from two variants of a layer (Switch stacks): one parameter, more layers.
                if (!clash.Shape.Equals(shape) || clash.Module != module)
                    throw new InvalidOperationException($"Parameter '{parameter.Path}' is declared twice with different shapes.");
                var merged = clash with { Layers = clash.Layers.Concat(layers).Distinct().OrderBy(l => l).ToEquatableArray() };
                parameters[clash.Id] = merged;
                return clash.Id;
            }
            parameters.Add(parameter);
            return parameter.Id;
        }

        /// <summary>The module path of a role in this model's layout.</summary>
        public string Path(Role role, string stack = "") => Layout.Path(role, stack);

        public ModelGraph Build(ModelTask task)
        {
            var forward = functions.FirstOrDefault(f => f.Name == ModelGraph.ForwardFunction)
                ?? throw new InvalidOperationException("The graph has no Forward function.");
            var ordered = new[] { forward }.Concat(functions.Where(f => f != forward));
            return new ModelGraph(Spec, Layout.Name, task, values.ToEquatableArray(), parameters.ToEquatableArray(),
                ordered.ToEquatableArray(), stacks.ToEquatableArray(), Layout.Containers(Spec).Distinct().ToEquatableArray());
        }
    }

    /// <summary>Adds ops to one function, inferring and checking each output's shape.</summary>
    internal sealed class FunctionBuilder
    {
        private readonly GraphBuilder graph;
        private readonly List<int> inputs = new();
        private readonly List<Op> ops = new();
        private readonly string summary;

        internal FunctionBuilder(GraphBuilder graph, string name, string summary, string? stack, string? variant)
        {
            this.graph = graph;
            this.summary = summary;
            Name = name;
            Stack = stack;
            Variant = variant;
        }

        public string Name { get; }

        public string? Stack { get; }

        /// <summary>The stack variant whose layers this function's parameters belong to; null: every layer of the stack.</summary>
        public string? Variant { get; }

        /// <summary>Where added ops come from, for MDSL0100 (the family attribute unless set).</summary>
        public FindingSite Origin { get; set; }

        private Dims D => graph.Dims;

        private Value V(int id) => graph.Value(id);

        private EquatableArray<Dim> ShapeOf(int id) => graph.Value(id).Shape;

        // ---------------------------------------------------------------- inputs, parameters

        public int Input(string name, EquatableArray<Dim> shape, ElementType type = ElementType.Float, InputRole role = InputRole.None)
        {
            int id = graph.NewValue(name, shape, type, role);
            inputs.Add(id);
            return id;
        }

        /// <summary>A module's weight (and bias) for a role: [out, in] or [in, out] as the layout stores linear weights.</summary>
        public (int Weight, int Bias) LinearParameters(Role role, string stack, Dim input, Dim output, bool bias, InitRule init, int experts = 0, WeightLayout? orientation = null)
        {
            string path = graph.Path(role, stack);
            var layout = orientation ?? graph.Layout.Linear;
            var shape = layout == WeightLayout.InOut ? Shape.Of(input, output) : Shape.Of(output, input);
            var kind = layout == WeightLayout.InOut ? ModuleKind.Conv1D : ModuleKind.Linear;
            int w = graph.NewParameter(this, path, "weight", kind, shape, init, experts);
            int b = bias ? graph.NewParameter(this, path, "bias", kind, Shape.Of(output), InitRule.Zeros, experts) : -1;
            return (w, b);
        }

        /// <summary>A norm's gain (ones) and, for LayerNorm, bias (zeros).</summary>
        public (int Weight, int Bias) NormParameters(Role role, string stack, NormKind kind, Dim width)
        {
            string path = graph.Path(role, stack);
            var module = kind == NormKind.LayerNorm ? ModuleKind.LayerNorm : ModuleKind.RmsNorm;
            int w = graph.NewParameter(this, path, "weight", module, Shape.Of(width), InitRule.Ones);
            int b = kind == NormKind.LayerNorm ? graph.NewParameter(this, path, "bias", module, Shape.Of(width), InitRule.Zeros) : -1;
            return (w, b);
        }

        /// <summary>An embedding table [rows, width].</summary>
        public int EmbeddingTable(Role role, Dim rows, Dim width, InitRule init) => EmbeddingTableAt(role, "", rows, width, init);

        /// <summary>An embedding table [rows, width] of one stack (T5's relative position bias).</summary>
        public int EmbeddingTableAt(Role role, string stack, Dim rows, Dim width, InitRule init)
            => graph.NewParameter(this, graph.Path(role, stack), "weight", ModuleKind.Embedding, Shape.Of(rows, width), init);

        /// <summary>A bare tensor on a container (ViT's class token, BERT's MLM bias): the role's path ends with its name.</summary>
        public int BareParameter(Role role, EquatableArray<Dim> shape, InitRule init)
        {
            string path = graph.Path(role);
            int dot = path.LastIndexOf('.');
            return graph.NewParameter(this, path.Substring(0, dot), path.Substring(dot + 1), ModuleKind.Container, shape, init);
        }

        /// <summary>The patch projection: a Conv2d [Hidden, Channels, P, P] with a bias.</summary>
        public (int Weight, int Bias) PatchParameters(Role role, InitRule init)
        {
            string path = graph.Path(role);
            int w = graph.NewParameter(this, path, "weight", ModuleKind.PatchConv, Shape.Of(D.Hidden, D.Channels, D.Patch, D.Patch), init);
            int b = graph.NewParameter(this, path, "bias", ModuleKind.PatchConv, Shape.Of(D.Hidden), InitRule.Zeros);
            return (w, b);
        }

        /// <summary>
        /// LoRA adapters beside a linear module (PEFT's names): lora_A [Rank, in] and lora_B [out, Rank]. B starts at
        /// zero, so the adapted model starts equal to the base model; A is N(0, 1/sqrt(in)), the scale of PEFT's
        /// Kaiming-uniform start.
        /// </summary>
        public (int A, int B) LoraParameters(Role role, string stack, Dim input, Dim output)
        {
            string path = graph.Path(role, stack);
            var rank = D.Rank;
            int a = graph.NewParameter(this, path + ".lora_A", "weight", ModuleKind.Linear, Shape.Of(rank, input),
                InitRule.Normal(1.0 / System.Math.Sqrt(input.Size), "1.0 / global::System.Math.Sqrt(" + input.Expression + ")"));
            int b = graph.NewParameter(this, path + ".lora_B", "weight", ModuleKind.Linear, Shape.Of(output, rank), InitRule.Zeros);
            return (a, b);
        }

        // ---------------------------------------------------------------- ops

        private int Emit(Op op, params (string Name, EquatableArray<Dim> Shape, ElementType Type)[] outputs)
        {
            var ids = outputs.Select(o => graph.NewValue(o.Name, o.Shape, o.Type)).ToArray();
            ops.Add(op with { Outputs = ids.ToEquatableArray(), Origin = op.Origin == default ? Origin : op.Origin });
            return ids.Length == 0 ? -1 : ids[0];
        }

        private int[] LastOutputs() => ops[ops.Count - 1].Outputs.ToArray();

        private static EquatableArray<int> Ids(params int[] ids) => ids.ToEquatableArray();

        private string Describe(int id) => "'" + V(id).Name + "' " + Shape.Format(ShapeOf(id));

        private GraphShapeException Mismatch(string op, string what)
            => new($"{graph.Spec.Name}: {op} in {Name}: {what}.");

        private static EquatableArray<Dim> WithLast(EquatableArray<Dim> shape, Dim last)
            => shape.Take(shape.Count - 1).Append(last).ToEquatableArray();

        private void RequireLast(string op, int x, Dim expected, string role)
        {
            var shape = ShapeOf(x);
            if (shape.Count == 0 || shape[shape.Count - 1] != expected)
                throw Mismatch(op, $"{Describe(x)} must end in {role} {expected}");
        }

        private void RequireType(string op, int x, ElementType type)
        {
            if (V(x).Type != type) throw Mismatch(op, $"{Describe(x)} must hold {type} elements, not {V(x).Type}");
        }

        public int Embedding(int ids, int table, string name)
        {
            RequireType("Embedding", ids, ElementType.Int64);
            var t = graph.Parameter(table).Shape;
            return Emit(new EmbeddingOp { Inputs = Ids(ids), Parameters = Ids(table) }, (name, ShapeOf(ids).Append(t[1]).ToEquatableArray(), ElementType.Float));
        }

        public int LearnedPositions(int x, int table, string name)
        {
            var t = graph.Parameter(table).Shape;
            RequireLast("LearnedPositions", x, t[t.Count - 1], "the table's width");
            return Emit(new LearnedPositionsOp { Inputs = Ids(x), Parameters = Ids(table) }, (name, ShapeOf(x), ElementType.Float));
        }

        public int SinusoidalPositions(int x, string name)
        {
            var width = ShapeOf(x)[ShapeOf(x).Count - 1];
            if (width.Size % 2 != 0) throw Mismatch("SinusoidalPositions", $"{Describe(x)} needs an even width for sin/cos pairs");
            return Emit(new SinusoidalPositionsOp { Inputs = Ids(x) }, (name, ShapeOf(x), ElementType.Float));
        }

        public (int Q, int K) Rotary(int q, int k, double @base)
        {
            RequireLast("Rotary", q, D.QueryWidth, "the query width");
            RequireLast("Rotary", k, D.KvWidth, "the key width");
            if (D.HeadDim.Size % 2 != 0) throw Mismatch("Rotary", $"the head dimension {D.HeadDim} must be even");
            Emit(new RotaryOp(@base, D.HeadDim.Size) { Inputs = Ids(q, k) },
                (V(q).Name, ShapeOf(q), ElementType.Float), (V(k).Name, ShapeOf(k), ElementType.Float));
            var outputs = LastOutputs();
            return (outputs[0], outputs[1]);
        }

        public int RelativePositionBias(int x, int table, bool bidirectional, string name)
        {
            var t = graph.Parameter(table).Shape;
            if (t.Count != 2 || t[0] != D.Buckets || t[1] != D.Heads)
                throw Mismatch("RelativePositionBias", $"the table {Shape.Format(t)} must be [{D.Buckets}, {D.Heads}]");
            var p = graph.Spec.Positions;
            return Emit(new RelativePositionBiasOp(bidirectional, p.RelativeBuckets, p.RelativeMaxDistance) { Inputs = Ids(x), Parameters = Ids(table) },
                (name, Shape.Of(D.Heads, ShapeOf(x)[1], ShapeOf(x)[1] == Dims.Time ? Dims.KeyTime : ShapeOf(x)[1]), ElementType.Float));
        }

        public int Add(int a, int b, string name)
        {
            var sa = ShapeOf(a);
            var sb = ShapeOf(b);
            bool suffix = sb.Count <= sa.Count && sa.Skip(sa.Count - sb.Count).SequenceEqual(sb);
            if (!suffix) throw Mismatch("Add", $"{Describe(b)} does not broadcast to {Describe(a)}");
            return Emit(new AddOp { Inputs = Ids(a, b) }, (name, sa, ElementType.Float));
        }

        public int Norm(int x, NormKind kind, double epsilon, (int Weight, int Bias) parameters, string name)
        {
            var w = graph.Parameter(parameters.Weight).Shape;
            RequireLast("Norm", x, w[0], "the norm's width");
            return Emit(new NormOp(kind, epsilon) { Inputs = Ids(x), Parameters = Ids(parameters.Weight, parameters.Bias) }, (name, ShapeOf(x), ElementType.Float));
        }

        public int Linear(int x, (int Weight, int Bias) parameters, string name, WeightLayout? layout = null)
        {
            var w = graph.Parameter(parameters.Weight).Shape;
            var l = layout ?? graph.Layout.Linear;
            Dim input = l == WeightLayout.InOut ? w[0] : w[1], output = l == WeightLayout.InOut ? w[1] : w[0];
            RequireLast("Linear", x, input, "the weight's input dimension");
            if (parameters.Bias >= 0 && !graph.Parameter(parameters.Bias).Shape.SequenceEqual(new[] { output }))
                throw Mismatch("Linear", $"the bias {Shape.Format(graph.Parameter(parameters.Bias).Shape)} must be [{output}]");
            return Emit(new LinearOp(l) { Inputs = Ids(x), Parameters = Ids(parameters.Weight, parameters.Bias) }, (name, WithLast(ShapeOf(x), output), ElementType.Float));
        }

        public int LowRank(int x, (int A, int B) adapters, double scale, string name)
        {
            var a = graph.Parameter(adapters.A).Shape;
            var b = graph.Parameter(adapters.B).Shape;
            RequireLast("LowRank", x, a[1], "lora_A's input dimension");
            if (b[1] != a[0]) throw Mismatch("LowRank", $"lora_B {Shape.Format(b)} must take lora_A's rank {a[0]}");
            return Emit(new LowRankOp(scale) { Inputs = Ids(x), Parameters = Ids(adapters.A, adapters.B) }, (name, WithLast(ShapeOf(x), b[0]), ElementType.Float));
        }

        public int Activation(int x, ActivationKind function, string name)
            => Emit(new ActivationOp(function) { Inputs = Ids(x) }, (name, ShapeOf(x), ElementType.Float));

        public int Gated(int gate, int up, ActivationKind function, string name)
        {
            if (!ShapeOf(gate).Equals(ShapeOf(up))) throw Mismatch("GatedActivation", $"{Describe(gate)} and {Describe(up)} differ");
            return Emit(new GatedActivationOp(function) { Inputs = Ids(gate, up) }, (name, ShapeOf(gate), ElementType.Float));
        }

        public int[] Split(int x, params (string Name, Dim Width)[] parts)
        {
            var shape = ShapeOf(x);
            long total = parts.Sum(p => (long)p.Width.Size);
            if (shape[shape.Count - 1].Size != total)
                throw Mismatch("Split", $"{Describe(x)} cannot be split into {string.Join(" + ", parts.Select(p => p.Width))}");
            Emit(new SplitOp { Inputs = Ids(x) }, parts.Select(p => (p.Name, WithLast(shape, p.Width), ElementType.Float)).ToArray());
            return LastOutputs();
        }

        public int Attention(AttentionOp attention, int q, int k, int v, int mask, int bias, string name)
        {
            RequireLast("Attention", q, D.QueryWidth, "Heads*HeadDim");
            RequireLast("Attention", k, D.KvWidth, "KvHeads*HeadDim");
            RequireLast("Attention", v, D.KvWidth, "KvHeads*HeadDim");
            var sq = ShapeOf(q);
            var sk = ShapeOf(k);
            if (sq.Count != 3 || sk.Count != 3 || sq[0] != sk[0] || !sk.Equals(ShapeOf(v)))
                throw Mismatch("Attention", $"queries {Describe(q)}, keys {Describe(k)} and values {Describe(v)} must be [Batch, time, width] with one batch and keys shaped as values");
            if (attention.Heads % attention.KvHeads != 0)
                throw Mismatch("Attention", $"{attention.KvHeads} key/value heads cannot serve {attention.Heads} query heads");
            var extra = new List<int>();
            if (attention.PaddingMask)
            {
                if (mask < 0) throw Mismatch("Attention", "a padding mask was promised but not given");
                RequireType("Attention", mask, ElementType.Bool);
                var sm = ShapeOf(mask);
                if (sm.Count != 2 || sm[0] != sk[0] || sm[1] != sk[1])
                    throw Mismatch("Attention", $"the padding mask {Describe(mask)} must be [{sk[0]}, {sk[1]}]");
                extra.Add(mask);
            }
            if (attention.PositionBias)
            {
                if (bias < 0) throw Mismatch("Attention", "a position bias was promised but not given");
                extra.Add(bias);
            }
            return Emit(attention with { Inputs = new[] { q, k, v }.Concat(extra).ToEquatableArray() }, (name, sq, ElementType.Float));
        }

        public int Dropout(int x, double rate, string name)
            => rate > 0 ? Emit(new DropoutOp(rate) { Inputs = Ids(x) }, (name, ShapeOf(x), ElementType.Float)) : x;

        public (int Weights, int Experts, int Logits) Router(int x, int gate, int topK, bool renormalize)
        {
            RequireLast("Router", x, D.Hidden, "Hidden");
            var g = graph.Parameter(gate).Shape;
            if (g.Count != 2 || g[0] != D.Experts || g[1] != D.Hidden)
                throw Mismatch("Router", $"the gate {Shape.Format(g)} must be [{D.Experts}, {D.Hidden}] (nn.Linear's [out, in])");
            Emit(new RouterOp(topK, renormalize) { Inputs = Ids(x), Parameters = Ids(gate) },
                ("routing_weights", Shape.Of(Dims.Tokens, D.TopK), ElementType.Float),
                ("selected_experts", Shape.Of(Dims.Tokens, D.TopK), ElementType.Int64),
                ("router_logits", Shape.Of(Dims.Tokens, D.Experts), ElementType.Float));
            var o = LastOutputs();
            return (o[0], o[1], o[2]);
        }

        public int Experts(int x, int weights, int experts, int[] expertParameters, ActivationKind function, bool gated, string name)
        {
            RequireLast("Experts", x, D.Hidden, "Hidden");
            RequireType("Experts", experts, ElementType.Int64);
            return Emit(new ExpertsOp(function, gated) { Inputs = Ids(x, weights, experts), Parameters = expertParameters.ToEquatableArray() },
                (name, ShapeOf(x), ElementType.Float));
        }

        public int RouterLoss(int logits, int experts, double weight, double zWeight)
            => Emit(new RouterLossOp(D.Experts.Size, weight, zWeight) { Inputs = Ids(logits, experts) },
                ("router_loss", EquatableArray<Dim>.Empty, ElementType.Float));

        public int PatchEmbedding(int pixels, (int Weight, int Bias) parameters, string name)
        {
            var s = ShapeOf(pixels);
            if (s.Count != 4 || s[1] != D.Channels || s[2] != D.Image || s[3] != D.Image)
                throw Mismatch("PatchEmbedding", $"{Describe(pixels)} must be [Batch, {D.Channels}, {D.Image}, {D.Image}]");
            return Emit(new PatchEmbeddingOp(D.Patch.Size) { Inputs = Ids(pixels), Parameters = Ids(parameters.Weight, parameters.Bias) },
                (name, Shape.Of(s[0], D.Patches, D.Hidden), ElementType.Float));
        }

        public int ClassToken(int x, int token, string name)
        {
            var s = ShapeOf(x);
            if (s.Count != 3) throw Mismatch("ClassToken", $"{Describe(x)} must be [Batch, positions, Hidden]");
            return Emit(new ClassTokenOp { Inputs = Ids(x), Parameters = Ids(token) }, (name, Shape.Of(s[0], s[1].Plus(1), s[2]), ElementType.Float));
        }

        public int SelectToken(int x, int index, string name)
        {
            var s = ShapeOf(x);
            if (s.Count != 3) throw Mismatch("SelectToken", $"{Describe(x)} must be [Batch, positions, width]");
            return Emit(new SelectTokenOp(index) { Inputs = Ids(x) }, (name, Shape.Of(s[0], s[2]), ElementType.Float));
        }

        public int Scale(int x, double factor, string expression, string name)
            => Emit(new ScaleOp(factor, expression) { Inputs = Ids(x) }, (name, ShapeOf(x), ElementType.Float));

        public int CrossEntropy(int logits, int targets, string name)
        {
            RequireType("CrossEntropy", targets, ElementType.Int64);
            var sl = ShapeOf(logits);
            if (!sl.Take(sl.Count - 1).SequenceEqual(ShapeOf(targets)))
                throw Mismatch("CrossEntropy", $"targets {Describe(targets)} must have the shape of the logits {Describe(logits)} without the classes");
            return Emit(new CrossEntropyOp { Inputs = Ids(logits, targets) }, (name, EquatableArray<Dim>.Empty, ElementType.Float));
        }

        public int[] Call(string function, params int[] arguments)
        {
            var f = graph.Function(function);
            CheckArguments("Call " + function, f, arguments);
            Emit(new CallOp(function) { Inputs = arguments.ToEquatableArray() },
                f.Outputs.Select(o => (V(o).Name, ShapeOf(o), V(o).Type)).ToArray());
            return LastOutputs();
        }

        public int[] Repeat(string stack, int carried, params int[] arguments)
        {
            var s = graph.Stack(stack);
            foreach (var variant in s.Variants)
            {
                var body = graph.Function(variant);
                CheckArguments("Repeat " + stack, body, arguments);
                if (body.Outputs.Count != carried)
                    throw Mismatch("Repeat " + stack, $"the layer body '{variant}' returns {body.Outputs.Count} values but {carried} are carried");
                for (int i = 0; i < carried; i++)
                    if (!ShapeOf(body.Outputs[i]).Equals(ShapeOf(body.Inputs[i])))
                        throw Mismatch("Repeat " + stack, $"'{variant}' returns {Describe(body.Outputs[i])} for the carried {Describe(body.Inputs[i])}");
            }
            var first = graph.Function(s.Variants[0]);
            Emit(new RepeatOp(stack, carried) { Inputs = arguments.ToEquatableArray() },
                first.Outputs.Select(o => (V(o).Name, ShapeOf(o), V(o).Type)).ToArray());
            return LastOutputs();
        }

        private void CheckArguments(string op, Function f, int[] arguments)
        {
            if (arguments.Length != f.Inputs.Count)
                throw Mismatch(op, $"{arguments.Length} arguments for {f.Inputs.Count} inputs");
            for (int i = 0; i < arguments.Length; i++)
                if (!ShapeOf(arguments[i]).Equals(ShapeOf(f.Inputs[i])) || V(arguments[i]).Type != V(f.Inputs[i]).Type)
                    throw Mismatch(op, $"argument {i} {Describe(arguments[i])} does not fit input {Describe(f.Inputs[i])}");
        }

        /// <summary>Ends the function: its outputs, in order.</summary>
        public Function Return(params int[] outputs)
        {
            var function = new Function(Name, summary, inputs.ToEquatableArray(), outputs.ToEquatableArray(), ops.ToEquatableArray(), Stack);
            graph.Add(function);
            return function;
        }
    }
}
