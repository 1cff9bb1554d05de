using System;
using System.Globalization;
using System.Linq;
using ModelDsl.Generators.Helpers;

namespace ModelDsl.Generators.Ir
{
    /// <summary>
    /// A dimension with its meaning: shapes read "[Batch, Time, Hidden=768]", never bare numbers. Static dimensions
    /// (Hidden, Heads, Vocab, ...) carry their size; Batch and the time axes are known only at run time
    /// (<see cref="Size"/> = <see cref="Dynamic"/>). Two dimensions agree only when symbol and size both do, so
    /// [Hidden=64] + [Inner=64] is a shape error even though the numbers match.
    /// </summary>
    internal sealed record Dim(string Symbol, int Size)
    {
        public const int Dynamic = -1;

        public bool IsStatic => Size >= 0;

        /// <summary>"3*Hidden": a multiple of this dimension.</summary>
        public Dim Times(int factor) => new(factor.ToString(CultureInfo.InvariantCulture) + "*" + Wrap(Symbol), IsStatic ? checked(factor * Size) : Dynamic);

        /// <summary>"Heads*HeadDim": the product of two dimensions.</summary>
        public Dim By(Dim other) => new(Wrap(Symbol) + "*" + Wrap(other.Symbol), IsStatic && other.IsStatic ? checked(Size * other.Size) : Dynamic);

        /// <summary>"Patches+1": this dimension plus a constant.</summary>
        public Dim Plus(int extra) => new(Symbol + "+" + extra.ToString(CultureInfo.InvariantCulture), IsStatic ? checked(Size + extra) : Dynamic);

        /// <summary>The dimension as a C# expression over the model's generated constants ("3 * Hidden", "Heads * HeadDim").</summary>
        public string Expression => Symbol.Replace("*", " * ").Replace("+", " + ");

        public override string ToString()
            => !IsStatic || Symbol == Size.ToString(CultureInfo.InvariantCulture) ? Symbol : Symbol + "=" + Size.ToString(CultureInfo.InvariantCulture);

        private static string Wrap(string symbol) => symbol.IndexOf('+') >= 0 ? "(" + symbol + ")" : symbol;
    }

    /// <summary>A tensor shape of typed dimensions.</summary>
    internal static class Shape
    {
        public static EquatableArray<Dim> Of(params Dim[] dims) => dims.ToEquatableArray();

        public static string Format(EquatableArray<Dim> shape) => "[" + string.Join(", ", shape) + "]";

        /// <summary>Elements when every dimension is static, else throws: use <see cref="Elements(EquatableArray{Dim}, int, int, int)"/>.</summary>
        public static long StaticElements(EquatableArray<Dim> shape)
            => shape.Aggregate(1L, (n, d) => d.IsStatic ? checked(n * d.Size) : throw new InvalidOperationException($"{Format(shape)} has run-time dimensions."));

        /// <summary>Elements for given run-time sizes of Batch, Time and SourceTime.</summary>
        public static long Elements(EquatableArray<Dim> shape, int batch, int time, int sourceTime)
        {
            long n = 1;
            foreach (var d in shape) n = checked(n * RuntimeSize(d, batch, time, sourceTime));
            return n;
        }

        /// <summary>Powers of Batch, Time and SourceTime in the shape, and the product of its static sizes.</summary>
        public static (int Batch, int Time, int SourceTime, long Static) Monomial(EquatableArray<Dim> shape)
        {
            int b = 0, t = 0, s = 0;
            long c = 1;
            foreach (var d in shape)
            {
                if (d.IsStatic) { c = checked(c * d.Size); continue; }
                if (d == Dims.Batch) b++;
                else if (d == Dims.Time || d == Dims.KeyTime) t++;
                else if (d == Dims.SourceTime) s++;
                else if (d == Dims.Tokens) { b++; t++; }
                else throw new InvalidOperationException($"Unknown run-time dimension {d.Symbol}.");
            }
            return (b, t, s, c);
        }

        private static long RuntimeSize(Dim d, int batch, int time, int sourceTime)
        {
            if (d.IsStatic) return d.Size;
            if (d == Dims.Batch) return batch;
            if (d == Dims.Time || d == Dims.KeyTime) return time;
            if (d == Dims.SourceTime) return sourceTime;
            if (d == Dims.Tokens) return (long)batch * time;
            throw new InvalidOperationException($"Unknown run-time dimension {d.Symbol}.");
        }
    }

    /// <summary>
    /// The dimensions of one model, named once. Run-time axes: Batch, Time (the sequence being processed), KeyTime
    /// (positions attended to: Time plus cached ones), SourceTime (the encoder's sequence in cross-attention) and
    /// Tokens (Batch x Time flattened, for routing).
    /// </summary>
    internal sealed class Dims
    {
        public static readonly Dim Batch = new("Batch", Dim.Dynamic);
        public static readonly Dim Time = new("Time", Dim.Dynamic);
        public static readonly Dim KeyTime = new("KeyTime", Dim.Dynamic);
        public static readonly Dim SourceTime = new("SourceTime", Dim.Dynamic);
        public static readonly Dim Tokens = new("Tokens", Dim.Dynamic);
        public static readonly Dim One = new("1", 1);

        public Dims(Spec.ModelSpec spec)
        {
            Hidden = new Dim("Hidden", spec.Hidden);
            Heads = new Dim("Heads", spec.Heads);
            KvHeads = spec.KvHeads == spec.Heads ? Heads : new Dim("KvHeads", spec.KvHeads);
            HeadDim = new Dim("HeadDim", spec.HeadDim);
            Inner = new Dim("Inner", spec.Inner);
            Vocab = new Dim("Vocab", spec.Vocab);
            Context = new Dim("Context", spec.Context);
            Classes = new Dim("Classes", spec.Classes);
            Channels = new Dim("Channels", spec.Channels);
            Patch = new Dim("PatchSize", spec.PatchSize);
            Image = new Dim("ImageSize", spec.ImageSize);
            Patches = new Dim("Patches", spec.PatchesPerSide * spec.PatchesPerSide);
            Segments = new Dim("Segments", spec.Embeddings.SegmentTypes ?? 0);
            Buckets = new Dim("Buckets", spec.Positions.RelativeBuckets);
            Experts = new Dim("Experts", spec.Experts?.Experts ?? 0);
            TopK = new Dim("TopK", spec.Experts?.TopK ?? 0);
            Rank = new Dim("Rank", spec.Lora?.Rank ?? 0);
            // Hidden / Heads is the usual head width; T5's d_kv may differ, and then Heads*HeadDim is its own width.
            QueryWidth = (long)Heads.Size * HeadDim.Size == Hidden.Size ? Hidden : Heads.By(HeadDim);
            KvWidth = KvHeads == Heads ? QueryWidth : KvHeads.By(HeadDim);
        }

        public Dim Hidden { get; }
        public Dim Heads { get; }
        public Dim KvHeads { get; }
        public Dim HeadDim { get; }
        public Dim Inner { get; }
        public Dim Vocab { get; }
        public Dim Context { get; }
        public Dim Classes { get; }
        public Dim Channels { get; }
        public Dim Patch { get; }
        public Dim Image { get; }
        public Dim Patches { get; }
        public Dim Segments { get; }
        public Dim Buckets { get; }
        public Dim Experts { get; }
        public Dim TopK { get; }
        public Dim Rank { get; }

        /// <summary>The concatenated query heads: Hidden when Heads x HeadDim = Hidden, else "Heads*HeadDim".</summary>
        public Dim QueryWidth { get; }

        /// <summary>The concatenated key (or value) heads: QueryWidth for multi-head attention, "KvHeads*HeadDim" for GQA/MQA.</summary>
        public Dim KvWidth { get; }
    }
}
