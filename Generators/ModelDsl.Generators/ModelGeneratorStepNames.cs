namespace ModelDsl.Generators
{
    /// <summary>Tracking names of the pipeline steps, so incrementality tests can assert on each.</summary>
    public static class ModelGeneratorStepNames
    {
        /// <summary>Attributes to <c>ModelSpec</c> (the only step that touches symbols).</summary>
        public const string Parse = "ModelDsl.Parse";
        /// <summary>Specs that pass the shared validator.</summary>
        public const string Validate = "ModelDsl.Validate";
        /// <summary>Spec to op graph.</summary>
        public const string BuildGraph = "ModelDsl.BuildGraph";
        /// <summary>The full names of every model, for unique hint names.</summary>
        public const string ModelNames = "ModelDsl.ModelNames";
        /// <summary>Whether the compilation references the TorchSharp runtime.</summary>
        public const string BackendsAvailable = "ModelDsl.BackendsAvailable";
    }
}
