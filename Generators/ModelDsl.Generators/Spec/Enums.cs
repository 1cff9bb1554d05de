namespace ModelDsl.Generators.Spec
{
    // Mirrors of the public enums in ModelDsl (same names and values; a test keeps them equal). The generator and
    // analyzers must not load the user-facing assembly, so attribute arguments arrive as integers and are cast to these.

    internal enum ModelFamily { None, Decoder, Encoder, EncoderDecoder, VisionEncoder }

    internal enum Activation { Gelu = 0, GeluTanh = 1, Relu = 2, SwiGlu = 3, GeGlu = 4 }

    internal enum NormKind { LayerNorm = 0, RmsNorm = 1 }

    internal enum NormPlacement { Pre, Post }

    internal enum PositionKind { None, Learned, Sinusoidal, Rotary, Relative }

    [System.Flags]
    internal enum LoraTargets { None = 0, Query = 1, Key = 2, Value = 4, Output = 8, FeedForward = 16 }
}
