namespace ModelDsl.Checkpoints
{
    /// <summary>A safetensors element type as the format knows it, independent of any tensor library.</summary>
    /// <param name="Name">The dtype string in the header ("F32", "BF16", "I64", "BOOL", ...).</param>
    /// <param name="Size">Bytes per element.</param>
    /// <param name="IsFloating">Whether it is a floating-point type (F16, BF16, F32, F64).</param>
    public readonly record struct SafetensorsDType(string Name, int Size, bool IsFloating);
}
