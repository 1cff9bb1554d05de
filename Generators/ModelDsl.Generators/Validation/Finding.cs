using Microsoft.CodeAnalysis;

namespace ModelDsl.Generators.Validation
{
    /// <summary>
    /// Where a finding belongs, by name, so the spec needs no locations: the analyzer maps it back to syntax.
    /// Attribute null means the type's identifier; Argument null means the whole attribute.
    /// </summary>
    internal readonly record struct FindingSite(string? Attribute, string? Argument)
    {
        public static readonly FindingSite TypeName = new(null, null);

        public static FindingSite On(string attribute, string? argument = null) => new(attribute, argument);
    }

    /// <summary>One broken rule: the descriptor, where it belongs and its message arguments.</summary>
    internal sealed record Finding(DiagnosticDescriptor Descriptor, FindingSite Site, object?[] MessageArguments)
    {
        public string Id => Descriptor.Id;

        public bool IsError => Descriptor.DefaultSeverity == DiagnosticSeverity.Error;

        /// <summary>The message as the compiler would print it (used for run-time errors and tests).</summary>
        public string Message => string.Format(System.Globalization.CultureInfo.InvariantCulture,
            Descriptor.MessageFormat.ToString(System.Globalization.CultureInfo.InvariantCulture), MessageArguments);
    }
}
