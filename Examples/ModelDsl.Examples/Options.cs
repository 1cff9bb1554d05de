using System;
using System.Globalization;

namespace ModelDsl.Examples
{
    /// <summary>"--name value" pairs with typed, culture-invariant parsing and errors that name the option.</summary>
        internal sealed class Options
        {
            private readonly System.Collections.Generic.Dictionary<string, string> values = new();

            public Options(string[] args)
            {
                for (int i = 0; i < args.Length; i++)
                {
                    if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
                        throw new ArgumentException($"Expected '--option value', got '{args[i]}'. Run with 'help' for the options.");
                    values[args[i]] = args[++i];
                }
            }

            public string Get(string name, string fallback) => values.TryGetValue(name, out var v) ? v : fallback;

            public int Get(string name, int fallback)
                => values.TryGetValue(name, out var v)
                    ? int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : throw new FormatException($"{name} expects an integer, got '{v}'.")
                    : fallback;

            public double Get(string name, double fallback)
                => values.TryGetValue(name, out var v)
                    ? double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) ? x : throw new FormatException($"{name} expects a number, got '{v}'.")
                    : fallback;
        }
}
