using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ModelDsl.Examples.Benchmarks
{
    /// <summary>
    /// The baseline of the training-step benchmark: a GPT written by hand the way a TorchSharp user typically
    /// would, following nanoGPT (nn.Embedding, nn.LayerNorm, nn.Linear with [out, in] weights for the fused
    /// q/k/v projection, the output projection and the MLP, GELU-tanh, a tied LM head as linear(x, wte.weight)).
    /// Attention is either written out (q @ k^T / sqrt(d), masked_fill with a causal mask, softmax, @ v) or
    /// libtorch's fused scaled_dot_product_attention, chosen at construction, so the benchmark can tell
    /// "the generated code" apart from "fused attention".
    /// </summary>
    internal sealed class HandWrittenGpt : nn.Module<Tensor, Tensor>
    {
        private readonly int vocab;
        public readonly Embedding wte;
        public readonly Embedding wpe;
        public readonly Dropout drop;
        public readonly ModuleList<Block> h;
        public readonly LayerNorm ln_f;

        public HandWrittenGpt(int vocab, int context, int hidden, int heads, int layers, int inner, double dropout, double epsilon, bool fusedAttention)
            : base(fusedAttention ? "HandWrittenGptSdpa" : "HandWrittenGpt")
        {
            this.vocab = vocab;
            wte = nn.Embedding(vocab, hidden);
            wpe = nn.Embedding(context, hidden);
            drop = nn.Dropout(dropout);
            var blocks = new Block[layers];
            for (int i = 0; i < layers; i++) blocks[i] = new Block(context, hidden, heads, inner, dropout, epsilon, fusedAttention);
            h = nn.ModuleList(blocks);
            ln_f = nn.LayerNorm(hidden, epsilon);
            RegisterComponents();
        }

        public override Tensor forward(Tensor ids)
        {
            long time = ids.shape[1];
            var pos = arange(0, time, dtype: int64, device: ids.device);
            var x = drop.forward(wte.forward(ids) + wpe.forward(pos));
            foreach (var block in h) x = block.forward(x);
            x = ln_f.forward(x);
            return F.linear(x, wte.weight!);                                   // tied head: [B, T, Vocab]
        }

        public Tensor Loss(Tensor ids, Tensor targets)
        {
            var logits = forward(ids);
            return F.cross_entropy(logits.view(-1, vocab), targets.view(-1));
        }

        internal sealed class Block : nn.Module<Tensor, Tensor>
        {
            public readonly LayerNorm ln_1;
            public readonly SelfAttention attn;
            public readonly LayerNorm ln_2;
            public readonly Mlp mlp;

            public Block(int context, int hidden, int heads, int inner, double dropout, double epsilon, bool fused) : base("block")
            {
                ln_1 = nn.LayerNorm(hidden, epsilon);
                attn = new SelfAttention(context, hidden, heads, dropout, fused);
                ln_2 = nn.LayerNorm(hidden, epsilon);
                mlp = new Mlp(hidden, inner, dropout);
                RegisterComponents();
            }

            public override Tensor forward(Tensor x)
            {
                x = x + attn.forward(ln_1.forward(x));
                return x + mlp.forward(ln_2.forward(x));
            }
        }

        internal sealed class SelfAttention : nn.Module<Tensor, Tensor>
        {
            private readonly int hidden, heads;
            private readonly double dropout;
            private readonly bool fused;
            public readonly Linear c_attn;                                     // weight [3*hidden, hidden]
            public readonly Linear c_proj;                                     // weight [hidden, hidden]
            public readonly Dropout attn_dropout;
            public readonly Dropout resid_dropout;
            private readonly Tensor future;                                    // [1, 1, context, context], true above the diagonal

            public SelfAttention(int context, int hidden, int heads, double dropout, bool fused) : base("attn")
            {
                this.hidden = hidden;
                this.heads = heads;
                this.dropout = dropout;
                this.fused = fused;
                c_attn = nn.Linear(hidden, 3 * hidden);
                c_proj = nn.Linear(hidden, hidden);
                attn_dropout = nn.Dropout(dropout);
                resid_dropout = nn.Dropout(dropout);
                future = ones(context, context, dtype: ScalarType.Bool).triu(1).view(1, 1, context, context).DetachFromDisposeScope();
                RegisterComponents();
            }

            public override Tensor forward(Tensor x)
            {
                long b = x.shape[0], t = x.shape[1];
                int d = hidden / heads;
                var qkv = c_attn.forward(x).split(hidden, 2);
                var q = qkv[0].view(b, t, heads, d).transpose(1, 2);           // [B, H, T, d]
                var k = qkv[1].view(b, t, heads, d).transpose(1, 2);
                var v = qkv[2].view(b, t, heads, d).transpose(1, 2);
                Tensor y;
                if (fused)
                {
                    y = F.scaled_dot_product_attention(q, k, v, p: training ? dropout : 0.0, is_casual: true);
                }
                else
                {
                    var att = q.matmul(k.transpose(-2, -1)) * (1.0 / Math.Sqrt(d));
                    att = att.masked_fill(future[.., .., ..(int)t, ..(int)t], double.NegativeInfinity);
                    att = F.softmax(att, -1);
                    att = attn_dropout.forward(att);
                    y = att.matmul(v);
                }
                y = y.transpose(1, 2).contiguous().view(b, t, hidden);
                return resid_dropout.forward(c_proj.forward(y));
            }

            protected override void Dispose(bool disposing)
            {
                if (disposing) future.Dispose();
                base.Dispose(disposing);
            }
        }

        internal sealed class Mlp : nn.Module<Tensor, Tensor>
        {
            public readonly Linear c_fc;
            public readonly GELU gelu;
            public readonly Linear c_proj;
            public readonly Dropout dropout;

            public Mlp(int hidden, int inner, double dropout) : base("mlp")
            {
                c_fc = nn.Linear(hidden, inner);
                gelu = nn.GELU(GELU.Approximate.tanh);
                c_proj = nn.Linear(inner, hidden);
                this.dropout = nn.Dropout(dropout);
                RegisterComponents();
            }

            public override Tensor forward(Tensor x) => dropout.forward(c_proj.forward(gelu.forward(c_fc.forward(x))));
        }
    }
}
