using System;

namespace ModelDsl.Checkpoints
{
    /// <summary>
    /// A safetensors file is invalid, or its tensors do not match the model they are loaded into. The message names
    /// the file and, where one is to blame, the tensor.
    /// </summary>
    public sealed class SafetensorsException : Exception
    {
        public SafetensorsException(string message) : base(message) { }

        public SafetensorsException(string message, Exception innerException) : base(message, innerException) { }

        public SafetensorsException(string path, string? tensorName, string message, Exception? innerException = null)
            : base(message, innerException)
        {
            FilePath = path;
            TensorName = tensorName;
        }

        /// <summary>The file at fault, when known.</summary>
        public string? FilePath { get; }

        /// <summary>The (first) tensor at fault, when one is.</summary>
        public string? TensorName { get; }
    }
}
