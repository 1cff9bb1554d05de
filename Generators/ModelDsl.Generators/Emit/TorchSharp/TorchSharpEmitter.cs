using System.Collections.Generic;
using System.Linq;
using ModelDsl.Generators.Emit.Common;
using ModelDsl.Generators.Helpers;
using ModelDsl.Generators.Ir;
using ModelDsl.Generators.Spec;
using static ModelDsl.Generators.Helpers.CodeWriter;

namespace ModelDsl.Generators.Emit.TorchSharp
{
    /// <summary>
    /// Emits a decoder-only model as TorchSharp modules whose field names are Hugging Face GPT-2's, so
    /// state-dict names ("transformer.h.0.attn.c_attn.weight") and layouts (Conv1D: [in, out]) match checkpoints.
    /// Attention uses libtorch's fused scaled_dot_product_attention; autograd provides the backward pass.
    /// </summary>
    internal static class TorchSharpEmitter
    {
        private static readonly string[] Usings =
        {
            "using global::TorchSharp;",
            "using static global::TorchSharp.torch;",
            "using F = global::TorchSharp.torch.nn.functional;",
            "using KvCache = global::ModelDsl.TorchSharp.KvCache;",
        };

        public static string Emit(ModelIr ir)
        {
            var spec = ir.Spec;
            return TypeEmitter.Write(spec.Type, "TorchSharp backend: GPT-2 layout, fused attention, autograd backward.",
                Usings, writer =>
                {
                    writer.Line("/// <summary>Creates the model on the TorchSharp backend, initialised as GPT-2 is.</summary>");
                    writer.Line("/// <param name=\"device\">Where the parameters live; CPU when null.</param>");
                    using (writer.Block("public static TorchSharpModel CreateTorchSharp(Device? device = null)"))
                    {
                        writer.Line("var model = new TorchSharpModel();");
                        writer.Line("if (device is not null) model.to(device);");
                        writer.Line("return model;");
                    }
                    writer.Line();
                    WriteModel(writer, ir);
                });
        }

        private static void WriteModel(CodeWriter writer, ModelIr ir)
        {
            var spec = ir.Spec;
            writer.Line($"/// <summary>{spec.Name} on TorchSharp. Parameter names and layouts follow Hugging Face GPT-2.</summary>");
            using (writer.Block("public sealed class TorchSharpModel : global::ModelDsl.TorchSharp.CausalLanguageModel"))
            {
                writer.Line($"public const int Vocab = {Literal(spec.Vocab)};");
                writer.Line($"public const int Context = {Literal(spec.Context)};");
                writer.Line($"public const int Hidden = {Literal(spec.Hidden)};");
                writer.Line($"public const int Heads = {Literal(spec.Heads)};");
                writer.Line($"public const int HeadDim = {Literal(spec.HeadDim)};");
                writer.Line($"public const int Layers = {Literal(spec.Stacks.Total)};");
                writer.Line($"public const int Inner = {Literal(spec.Inner)};");
                writer.Line($"public const double Dropout = {Literal(spec.DropoutRate)};");
                writer.Line($"public const double Epsilon = {Literal(spec.Norm.Epsilon)};");
                writer.Line();
                writer.Line("public readonly TransformerModule transformer;");
                if (!spec.Embeddings.Tied) writer.Line("public readonly global::TorchSharp.Modules.Linear lm_head;          // [Vocab, Hidden]");
                writer.Line();
                using (writer.Block($"public TorchSharpModel() : base({Literal(spec.Name)})"))
                {
                    writer.Line("transformer = new TransformerModule();");
                    if (!spec.Embeddings.Tied) writer.Line("lm_head = nn.Linear(Hidden, Vocab, hasBias: false);");
                    writer.Line("RegisterComponents();");
                    writer.Line("ResetParameters();");
                }
                writer.Line();
                writer.Line("public override global::ModelDsl.ModelCard Card => " + spec.Name + ".Card;");
                writer.Line();
                writer.Line("public override KvCache CreateCache(long batch)");
                writer.Line("    => new KvCache(Layers, batch, Heads, Context, HeadDim, transformer.wte.weight!.device, transformer.wte.weight!.dtype);");
                writer.Line();
                using (writer.Block("public override Tensor Forward(Tensor ids, KvCache? cache)"))
                {
                    writer.Line("CheckInput(ids, cache?.Length ?? 0);");
                    writer.Line("var x = transformer.Forward(ids, cache);                    // [B, T, Hidden]");
                    writer.Line(spec.Embeddings.Tied
                        ? "return F.linear(x, transformer.wte.weight!);                // tied LM head: [B, T, Vocab]"
                        : "return lm_head.forward(x);                                  // [B, T, Vocab]");
                }
                writer.Line();
                WriteReset(writer, ir);
                writer.Line();
                WriteCheckpointNames(writer, spec);
                writer.Line();
                WriteTransformer(writer, spec);
                writer.Line();
                WriteBlock(writer, spec);
                writer.Line();
                WriteAttention(writer, spec);
                writer.Line();
                WriteFeedForward(writer, spec);
            }
        }

        /// <summary>Initialisation, written out from the block graph so every parameter's rule is visible.</summary>
        private static void WriteReset(CodeWriter writer, ModelIr ir)
        {
            writer.Line("/// <summary>GPT-2 initialisation: N(0, 0.02); residual projections N(0, 0.02 / sqrt(2 x Layers)); norms 1 and 0.</summary>");
            using (writer.Block("public void ResetParameters()"))
            using (writer.Block("using (no_grad())"))
            {
                foreach (var child in ir.Root.Children) WriteInit(writer, child, "this", 0);
            }
        }

        private static void WriteInit(CodeWriter writer, Block block, string owner, int depth)
        {
            var access = block.Name.Length == 0 ? owner : owner + "." + block.Name;
            if (block.Kind == BlockKind.Stack)
            {
                var item = "block" + (depth == 0 ? "" : depth.ToString(System.Globalization.CultureInfo.InvariantCulture));
                using (writer.Block($"foreach (var {item} in {access})"))
                    WriteInit(writer, block.Children[0], item, depth + 1);
                return;
            }
            foreach (var parameter in block.Parameters)
            {
                var target = $"{access}.{parameter.Name}!";
                writer.Line(parameter.Init switch
                {
                    Init.Ones => $"nn.init.ones_({target});",
                    Init.Zeros => $"nn.init.zeros_({target});",
                    _ => $"nn.init.normal_({target}, 0.0, {Literal(parameter.Std)});",
                } + $" // [{string.Join(", ", parameter.Shape)}]");
            }
            foreach (var child in block.Children) WriteInit(writer, child, access, depth);
        }

        private static void WriteCheckpointNames(CodeWriter writer, ModelSpec spec)
        {
            writer.Line("/// <summary>Accepts GPT2LMHeadModel (\"transformer.h.0...\") and GPT2Model (\"h.0...\") names; skips the mask buffers of old checkpoints and the tied lm_head copy.</summary>");
            using (writer.Block("protected override string? MapCheckpointName(string name)"))
            {
                writer.Line("if (name.EndsWith(\".attn.bias\", global::System.StringComparison.Ordinal) || name.EndsWith(\".attn.masked_bias\", global::System.StringComparison.Ordinal)) return null;");
                writer.Line(spec.Embeddings.Tied
                    ? "if (name == \"lm_head.weight\") return null;"
                    : "if (name == \"lm_head.weight\") return name;");
                writer.Line("return name.StartsWith(\"transformer.\", global::System.StringComparison.Ordinal) ? name : \"transformer.\" + name;");
            }
        }

        private static void WriteTransformer(CodeWriter writer, ModelSpec spec)
        {
            bool dropout = spec.DropoutRate > 0;
            bool pre = spec.Norm.Placement == NormPlacement.Pre;
            writer.Line(pre
                ? "/// <summary>Embeddings, the decoder blocks and the final norm (Hugging Face's GPT2Model).</summary>"
                : "/// <summary>Embeddings and the post-norm decoder blocks (Hugging Face's GPT2Model layout).</summary>");
            using (writer.Block("public sealed class TransformerModule : nn.Module"))
            {
                writer.Line("public readonly global::TorchSharp.Modules.Embedding wte;             // [Vocab, Hidden]");
                writer.Line("public readonly global::TorchSharp.Modules.Embedding wpe;             // [Context, Hidden]");
                if (dropout) writer.Line("public readonly global::TorchSharp.Modules.Dropout drop;");
                writer.Line("public readonly global::TorchSharp.Modules.ModuleList<DecoderBlock> h;");
                if (pre) writer.Line("public readonly global::TorchSharp.Modules.LayerNorm ln_f;");
                writer.Line();
                using (writer.Block("public TransformerModule() : base(\"transformer\")"))
                {
                    writer.Line("wte = nn.Embedding(Vocab, Hidden);");
                    writer.Line("wpe = nn.Embedding(Context, Hidden);");
                    if (dropout) writer.Line("drop = nn.Dropout(Dropout);");
                    writer.Line("var blocks = new DecoderBlock[Layers];");
                    writer.Line("for (int i = 0; i < Layers; i++) blocks[i] = new DecoderBlock();");
                    writer.Line("h = nn.ModuleList(blocks);");
                    if (pre) writer.Line("ln_f = nn.LayerNorm(Hidden, Epsilon);");
                    writer.Line("RegisterComponents();");
                }
                writer.Line();
                using (writer.Block("public Tensor Forward(Tensor ids, KvCache? cache)"))
                {
                    writer.Line("long offset = cache?.Length ?? 0;");
                    writer.Line("long time = ids.shape[1];");
                    writer.Line("var positions = arange(offset, offset + time, dtype: int64, device: ids.device);");
                    writer.Line(dropout
                        ? "var x = drop.forward(wte.forward(ids) + wpe.forward(positions)); // [B, T, Hidden]"
                        : "var x = wte.forward(ids) + wpe.forward(positions);              // [B, T, Hidden]");
                    writer.Line("for (int layer = 0; layer < Layers; layer++) x = h[layer].Forward(x, cache, layer);");
                    writer.Line("cache?.Advance((int)time);");
                    writer.Line(pre ? "return ln_f.forward(x);" : "return x;");
                }
            }
        }

        private static void WriteBlock(CodeWriter writer, ModelSpec spec)
        {
            bool pre = spec.Norm.Placement == NormPlacement.Pre;
            writer.Line(pre
                ? "/// <summary>Pre-norm block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).</summary>"
                : "/// <summary>Post-norm block: ln_1(x + attn(x)), then ln_2(x + mlp(x)).</summary>");
            using (writer.Block("public sealed class DecoderBlock : nn.Module"))
            {
                writer.Line("public readonly global::TorchSharp.Modules.LayerNorm ln_1;");
                writer.Line("public readonly CausalSelfAttention attn;");
                writer.Line("public readonly global::TorchSharp.Modules.LayerNorm ln_2;");
                writer.Line("public readonly FeedForward mlp;");
                writer.Line();
                using (writer.Block("public DecoderBlock() : base(\"block\")"))
                {
                    writer.Line("ln_1 = nn.LayerNorm(Hidden, Epsilon);");
                    writer.Line("attn = new CausalSelfAttention();");
                    writer.Line("ln_2 = nn.LayerNorm(Hidden, Epsilon);");
                    writer.Line("mlp = new FeedForward();");
                    writer.Line("RegisterComponents();");
                }
                writer.Line();
                using (writer.Block("public Tensor Forward(Tensor x, KvCache? cache, int layer)"))
                {
                    if (pre)
                    {
                        writer.Line("x = x + attn.Forward(ln_1.forward(x), cache, layer);");
                        writer.Line("return x + mlp.forward(ln_2.forward(x));");
                    }
                    else
                    {
                        writer.Line("x = ln_1.forward(x + attn.Forward(x, cache, layer));");
                        writer.Line("return ln_2.forward(x + mlp.forward(x));");
                    }
                }
            }
        }

        private static void WriteAttention(CodeWriter writer, ModelSpec spec)
        {
            bool dropout = spec.DropoutRate > 0;
            writer.Line("/// <summary>Causal multi-head self-attention: one fused QKV projection, libtorch's fused SDPA, output projection.</summary>");
            using (writer.Block("public sealed class CausalSelfAttention : nn.Module"))
            {
                writer.Line("public readonly global::ModelDsl.TorchSharp.Conv1D c_attn;          // [Hidden, 3*Hidden]");
                writer.Line("public readonly global::ModelDsl.TorchSharp.Conv1D c_proj;          // [Hidden, Hidden]");
                if (dropout) writer.Line("public readonly global::TorchSharp.Modules.Dropout resid_dropout;");
                writer.Line();
                using (writer.Block("public CausalSelfAttention() : base(\"attn\")"))
                {
                    writer.Line("c_attn = new global::ModelDsl.TorchSharp.Conv1D(Hidden, 3 * Hidden);");
                    writer.Line("c_proj = new global::ModelDsl.TorchSharp.Conv1D(Hidden, Hidden);");
                    if (dropout) writer.Line("resid_dropout = nn.Dropout(Dropout);");
                    writer.Line("RegisterComponents();");
                }
                writer.Line();
                using (writer.Block("public Tensor Forward(Tensor x, KvCache? cache, int layer)"))
                {
                    writer.Line("long batch = x.shape[0], time = x.shape[1];");
                    writer.Line("var qkv = c_attn.forward(x).split(Hidden, 2);                  // 3 x [B, T, Hidden]");
                    writer.Line("var q = qkv[0].view(batch, time, Heads, HeadDim).transpose(1, 2); // [B, Heads, T, HeadDim]");
                    writer.Line("var k = qkv[1].view(batch, time, Heads, HeadDim).transpose(1, 2);");
                    writer.Line("var v = qkv[2].view(batch, time, Heads, HeadDim).transpose(1, 2);");
                    writer.Line("long offset = cache?.Length ?? 0;");
                    writer.Line("if (cache is not null) (k, v) = cache.Append(layer, k, v);       // [B, Heads, offset + T, HeadDim]");
                    writer.Line(dropout ? "double p = training ? Dropout : 0.0;" : "const double p = 0.0;");
                    writer.Line("var y = offset == 0");
                    writer.Line("    ? F.scaled_dot_product_attention(q, k, v, p: p, is_casual: true)");
                    writer.Line("    : F.scaled_dot_product_attention(q, k, v, global::ModelDsl.TorchSharp.AttentionMasks.Causal(time, offset, x.device), p);");
                    writer.Line("y = y.transpose(1, 2).reshape(batch, time, Hidden);");
                    writer.Line(dropout ? "return resid_dropout.forward(c_proj.forward(y));" : "return c_proj.forward(y);");
                }
            }
        }

        private static void WriteFeedForward(CodeWriter writer, ModelSpec spec)
        {
            bool dropout = spec.DropoutRate > 0;
            var activation = spec.FeedForward.Activation switch
            {
                Activation.GeluTanh => "F.gelu(c_fc.forward(x), global::TorchSharp.Modules.GELU.Approximate.tanh)",
                Activation.Relu => "F.relu(c_fc.forward(x))",
                _ => "F.gelu(c_fc.forward(x))",
            };
            writer.Line($"/// <summary>Position-wise MLP: c_proj({spec.FeedForward.Activation}(c_fc(x))).</summary>");
            using (writer.Block("public sealed class FeedForward : nn.Module<Tensor, Tensor>"))
            {
                writer.Line("public readonly global::ModelDsl.TorchSharp.Conv1D c_fc;            // [Hidden, Inner]");
                writer.Line("public readonly global::ModelDsl.TorchSharp.Conv1D c_proj;          // [Inner, Hidden]");
                if (dropout) writer.Line("public readonly global::TorchSharp.Modules.Dropout dropout;");
                writer.Line();
                using (writer.Block("public FeedForward() : base(\"mlp\")"))
                {
                    writer.Line("c_fc = new global::ModelDsl.TorchSharp.Conv1D(Hidden, Inner);");
                    writer.Line("c_proj = new global::ModelDsl.TorchSharp.Conv1D(Inner, Hidden);");
                    if (dropout) writer.Line("dropout = nn.Dropout(Dropout);");
                    writer.Line("RegisterComponents();");
                }
                writer.Line();
                writer.Line("public override Tensor forward(Tensor x)");
                writer.Line(dropout
                    ? $"    => dropout.forward(c_proj.forward({activation}));"
                    : $"    => c_proj.forward({activation});");
            }
        }
    }
}
