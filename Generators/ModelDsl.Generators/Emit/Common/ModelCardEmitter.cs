using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Ir;
using static ModelDsl.Generators.Helpers.CodeWriter;

namespace ModelDsl.Generators.Emit.Common
{
    /// <summary>Emits the backend-independent part: the compile-time model card.</summary>
    internal static class ModelCardEmitter
    {
        public static string Emit(ModelIr ir)
        {
            var spec = ir.Spec;
            return TypeEmitter.Write(spec.Type, "Model card: shapes, parameter count and cost, known at compile time.",
                System.Array.Empty<string>(), writer =>
                {
                    writer.Line("/// <summary>");
                    writer.Line($"/// {spec.Name}: {ir.ParameterCount.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)} parameters ({spec.Family}, hidden {Literal(spec.Hidden)}, {Literal(spec.Heads)} heads, {Literal(spec.Stacks.Total)} layers).");
                    writer.Line("/// </summary>");
                    writer.Line("public static global::ModelDsl.ModelCard Card { get; } = new global::ModelDsl.ModelCard(");
                    writer.Line($"    name: {Literal(spec.Name)}, family: {Literal(spec.Family.ToString())},");
                    writer.Line($"    vocab: {Literal(spec.Vocab)}, context: {Literal(spec.Context)}, hidden: {Literal(spec.Hidden)},");
                    writer.Line($"    heads: {Literal(spec.Heads)}, kvHeads: {Literal(spec.KvHeads)}, headDim: {Literal(spec.HeadDim)},");
                    writer.Line($"    layers: {Literal(spec.Stacks.Total)}, inner: {Literal(spec.Inner)}, parameterCount: {Literal(ir.ParameterCount)}L);");
                });
        }
    }
}
