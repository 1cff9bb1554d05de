namespace ModelDsl.Generators
{
    /// <summary>Tracking names of the pipeline steps, so incrementality tests can assert on each.</summary>
    public static class ModelGeneratorStepNames
    {
        /// <summary>Attributes to <c>ModelSpec</c> (the only step that touches symbols).</summary>
        public const string Parse = "ModelDsl.Parse";
        /// <summary>Specs that pass the shared validator.</summary>
        public const string Validate = "ModelDsl.Validate";
        /// <summary>Spec to block graph.</summary>
        public const string BuildIr = "ModelDsl.BuildIr";
        /// <summary>Whether the compilation references the TorchSharp runtime.</summary>
        public const string TorchSharpAvailable = "ModelDsl.TorchSharpAvailable";
    }
}
