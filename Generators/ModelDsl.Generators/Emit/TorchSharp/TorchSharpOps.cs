using System;
using System.Collections.Generic;
using System.Linq;
using ModelDsl.Generators.Ir;
using static ModelDsl.Generators.Helpers.CodeWriter;

namespace ModelDsl.Generators.Emit.TorchSharp
{
    /// <summary>
    /// One writer per op kind: the TorchSharp backend is this table. Each writes the op's line in terms of the
    /// module tree (leaf modules' forward) and the runtime's op functions (TransformerModel: Attention, Rotary,
    /// Experts, ...), which the generated class inherits, so the short names cannot be shadowed by a user's types.
    /// What the backend can generate is exactly the kinds listed here; MDSL0100 reports the rest.
    /// </summary>
    internal static class TorchSharpOps
    {
        public static readonly IReadOnlyDictionary<OpKind, Action<FunctionWriter, Op>> Writers = new Dictionary<OpKind, Action<FunctionWriter, Op>>
        {
            [OpKind.Embedding] = (w, op) => w.Line($"{w.Out(op)} = {w.Module(op, 0)}.forward({w.In(op, 0)});", op),
            [OpKind.LearnedPositions] = LearnedPositions,
            [OpKind.SinusoidalPositions] = (w, op) => w.Line($"{w.Out(op)} = {w.In(op, 0)} + SinusoidalPositions({w.In(op, 0)}, state);", op),
            [OpKind.Rotary] = Rotary,
            [OpKind.RelativePositionBias] = RelativePositionBias,
            [OpKind.Add] = (w, op) => w.Line($"{w.Out(op)} = {w.In(op, 0)} + {w.In(op, 1)};", op),
            [OpKind.Norm] = (w, op) => w.Line($"{w.Out(op)} = {w.Module(op, 0)}.forward({w.In(op, 0)});", op),
            [OpKind.Linear] = Linear,
            [OpKind.LowRank] = (w, op) => w.Line($"{w.Out(op)} = LowRank({w.In(op, 0)}, {w.TensorOf(op, 0)}, {w.TensorOf(op, 1)}, LoraScale);", op),
            [OpKind.Activation] = (w, op) => w.Line($"{w.Out(op)} = {Function(((ActivationOp)op).Function)}({w.In(op, 0)});", op),
            [OpKind.GatedActivation] = (w, op) => w.Line($"{w.Out(op)} = {Function(((GatedActivationOp)op).Function)}({w.In(op, 0)}) * {w.In(op, 1)};", op),
            [OpKind.Split] = Split,
            [OpKind.Attention] = Attention,
            [OpKind.Dropout] = (w, op) => w.Line($"{w.Out(op)} = Dropout({w.In(op, 0)}, DropoutRate);", op),
            [OpKind.Router] = Router,
            [OpKind.Experts] = Experts,
            [OpKind.RouterLoss] = RouterLoss,
            [OpKind.PatchEmbedding] = (w, op) => w.Line($"{w.Out(op)} = PatchEmbedding({w.In(op, 0)}, {w.Module(op, 0)});", op),
            [OpKind.ClassToken] = (w, op) => w.Line($"{w.Out(op)} = ClassToken({w.In(op, 0)}, {w.TensorOf(op, 0)});", op),
            [OpKind.SelectToken] = (w, op) => w.Line($"{w.Out(op)} = {w.In(op, 0)}.select(1, {Literal(((SelectTokenOp)op).Index)});", op),
            [OpKind.Scale] = (w, op) => w.Line($"{w.Out(op)} = {w.In(op, 0)} * ({((ScaleOp)op).FactorExpression});", op),
            [OpKind.CrossEntropy] = (w, op) => w.Line($"{w.Out(op)} = CrossEntropy({w.In(op, 0)}, {w.In(op, 1)});", op),
            [OpKind.Call] = Call,
            [OpKind.Repeat] = Repeat,
        };

        /// <summary>The op kinds this backend generates.</summary>
        public static IReadOnlyCollection<OpKind> Supported => (IReadOnlyCollection<OpKind>)Writers.Keys;

        /// <summary>The tasks whose runtime base class this backend has.</summary>
        public static readonly IReadOnlyCollection<ModelTask> Tasks = new[]
        {
            ModelTask.CausalLanguageModel, ModelTask.MaskedLanguageModel, ModelTask.SequenceClassification,
            ModelTask.SequenceToSequence, ModelTask.ImageClassification,
        };

        private static string Function(ActivationKind activation) => activation switch
        {
            ActivationKind.GeluTanh => "GeluTanh",
            _ => activation.ToString(),
        };

        private static void LearnedPositions(FunctionWriter w, Op op)
        {
            // A [Context, Hidden] table is read at the positions after the cache; ViT's [1, Patches+1, Hidden] is added whole.
            var table = w.Parameter(op, 0);
            w.Line(table.Shape.Count == 2
                ? $"{w.Out(op)} = {w.In(op, 0)} + {w.Module(op, 0)}.forward(Positions({w.In(op, 0)}, state));"
                : $"{w.Out(op)} = {w.In(op, 0)} + {w.TensorOf(op, 0)};", op);
        }

        private static void Rotary(FunctionWriter w, Op op)
        {
            string q = w.Out(op, 0), k = w.Out(op, 1);
            w.Line($"({q}, {k}) = Rotary({w.In(op, 0)}, {w.In(op, 1)}, HeadDim, RotaryBase, state);", op);
        }

        private static void RelativePositionBias(FunctionWriter w, Op op)
        {
            var bias = (RelativePositionBiasOp)op;
            w.Line($"{w.Out(op)} = RelativePositionBias({w.In(op, 0)}, {w.TensorOf(op, 0)}, bidirectional: {Literal(bias.Bidirectional)}, Buckets, MaxDistance, state);", op);
        }

        private static void Linear(FunctionWriter w, Op op)
        {
            // A module's own weight (and bias) go through its forward; a borrowed weight (a tied head) through Linear.
            if (w.OwnModule(op))
            {
                w.Line($"{w.Out(op)} = {w.Module(op, 0)}.forward({w.In(op, 0)});", op);
                return;
            }
            string bias = op.HasParameter(1) ? ", " + w.TensorOf(op, 1) : "";
            w.Line($"{w.Out(op)} = Linear({w.In(op, 0)}, {w.TensorOf(op, 0)}{bias});", op);
        }

        private static void Split(FunctionWriter w, Op op)
        {
            var widths = op.Outputs.Select(o => TorchSharpEmitter.Expression(w.Graph.Value(o).Shape.Last()));
            var outputs = op.Outputs.Select((_, i) => w.Out(op, i)).ToList();
            string target = outputs.All(o => o.StartsWith("var ", StringComparison.Ordinal))
                ? "var (" + string.Join(", ", outputs.Select(o => o.Substring(4))) + ")"
                : "(" + string.Join(", ", outputs) + ")";
            w.Line($"{target} = Split({w.In(op, 0)}, {string.Join(", ", widths)});", op);
        }

        private static void Attention(FunctionWriter w, Op op)
        {
            var a = (AttentionOp)op;
            var arguments = new List<string> { w.In(op, 0), w.In(op, 1), w.In(op, 2), w.Context.AttentionOptionsName(w.Function), "state", w.TakesLayer ? "layer" : "0" };
            int next = 3;
            if (a.PaddingMask) arguments.Add("mask: " + w.In(op, next++));
            if (a.PositionBias) arguments.Add("bias: " + w.In(op, next));
            w.Line($"{w.Out(op)} = Attention({string.Join(", ", arguments)});", op);
        }

        private static void Router(FunctionWriter w, Op op)
        {
            var r = (RouterOp)op;
            var outputs = op.Outputs.Select((_, i) => w.Out(op, i).Replace("var ", "")).ToList();
            w.Line($"var ({string.Join(", ", outputs)}) = Route({w.In(op, 0)}, {w.TensorOf(op, 0)}, TopK, renormalize: {Literal(r.Renormalize)}, state, {(w.TakesLayer ? "layer" : "0")});", op);
        }

        private static void Experts(FunctionWriter w, Op op)
        {
            // Each expert's feed-forward, spelt out: the runtime dispatches the routed tokens and combines the results.
            var e = (ExpertsOp)op;
            string Weights(int i) => w.Access(w.Parameter(op, i).ModulePath, w.Parameter(op, i));
            string up = Weights(0) + ".forward(t)";
            string down = Weights(op.Parameters.Count - 1);
            string inner = e.Gated
                ? $"{Function(e.Function)}({Weights(1)}.forward(t)) * {up}"
                : $"{Function(e.Function)}({up})";
            w.Line($"{w.Out(op)} = CombineExperts({w.In(op, 0)}, {w.In(op, 1)}, {w.In(op, 2)}, (expert, t) => {down}.forward({inner}));", op);
        }

        private static void RouterLoss(FunctionWriter w, Op op)
        {
            w.Plain($"state.AddRouting({w.In(op, 0)}, {w.In(op, 1)}, RouterLossOptions);");
        }

        private static void Call(FunctionWriter w, Op op)
        {
            var callee = w.Graph.Function(((CallOp)op).Function);
            var arguments = op.Inputs.Select(i => w.Var(i)).ToList();
            if (TorchSharpEmitter.IsEntry(w.Graph, callee)) arguments = TorchSharpEmitter.EntryArguments(w.Graph, callee, arguments).ToList();
            else
            {
                if (callee.Stack is not null) arguments.Add("layer");
                if (w.Context.NeedsState(callee)) arguments.Add("state");
            }
            string call = $"{callee.Name}({string.Join(", ", arguments)})";
            if (op.Outputs.Count == 1) w.Line($"{w.Out(op)} = {call};", op);
            else w.Line($"var ({string.Join(", ", op.Outputs.Select((_, i) => w.Out(op, i).Replace("var ", "")))}) = {call};", op);
        }

        private static void Repeat(FunctionWriter w, Op op)
        {
            var repeat = (RepeatOp)op;
            var stack = w.Graph.Stack(repeat.Stack);
            string carried = w.In(op, 0);
            string output = w.Out(op);
            if (output.StartsWith("var ", StringComparison.Ordinal))
            {
                w.Plain($"{output} = {carried};");
                output = output.Substring(4);
            }
            var shared = op.Inputs.Skip(1).Select(i => w.Var(i));
            string Call(string variant)
            {
                var body = w.Graph.Function(variant);
                var args = new[] { output }.Concat(shared).Append("layer");
                if (w.Context.NeedsState(body)) args = args.Append("state");
                return $"{variant}({string.Join(", ", args)})";
            }
            using (w.Writer.Block($"for (int layer = 0; layer < {stack.Name}Layers; layer++)"))
            {
                if (stack.Variants.Count == 1)
                    w.Line($"{output} = {Call(stack.Variants[0])};", op);
                else
                    w.Line($"{output} = {stack.Name}LayerVariants[layer] == 0 ? {Call(stack.Variants[0])} : {Call(stack.Variants[1])};", op);
            }
        }
    }
}
