using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace ModelDsl.Checkpoints
{
    /// <summary>
    /// Parses the JSON header of a safetensors file token by token, so that every problem, down to a byte that is not
    /// UTF-8 inside a tensor name, becomes a <see cref="SafetensorsException"/> naming the file and the tensor (a
    /// <c>JsonDocument</c> defers such problems to accessors that throw <see cref="InvalidOperationException"/>).
    /// </summary>
    internal static class SafetensorsHeaderParser
    {
        private static readonly JsonReaderOptions Options = new() { MaxDepth = 16 };

        /// <summary>The raw fields of one tensor entry, before the checks against dtype sizes and the data buffer.</summary>
        internal readonly record struct RawEntry(string Name, string? DType, long[]? Shape, long[]? Offsets);

        /// <summary>Parses <paramref name="json"/> (the header bytes, a JSON object) into tensor entries and metadata.</summary>
        /// <exception cref="SafetensorsException">The header is not valid JSON or an entry is malformed.</exception>
        public static (List<RawEntry> Tensors, Dictionary<string, string> Metadata) Parse(string path, byte[] json)
        {
            var tensors = new List<RawEntry>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            try
            {
                var reader = new Utf8JsonReader(json, Options);
                Next(ref reader, path, null);
                if (reader.TokenType != JsonTokenType.StartObject)
                    throw Bad(path, null, $"the header is a JSON {Kind(reader.TokenType)}, not an object");
                bool sawMetadata = false;
                while (true)
                {
                    Next(ref reader, path, null);
                    if (reader.TokenType == JsonTokenType.EndObject) break;
                    string name = TensorName(ref reader, path);
                    Next(ref reader, path, name);
                    if (name == SafetensorsFile.MetadataKey)
                    {
                        if (sawMetadata) throw Bad(path, null, $"'{SafetensorsFile.MetadataKey}' appears twice in the header");
                        sawMetadata = true;
                        ReadMetadata(ref reader, path, metadata);
                        continue;
                    }
                    if (!names.Add(name))
                        throw Bad(path, name, "the name appears twice in the header");
                    tensors.Add(ReadEntry(ref reader, path, name, json));
                }
                if (reader.Read()) // only whitespace (the writer's padding) may follow the object
                    throw Bad(path, null, "the header has content after its JSON object");
            }
            catch (JsonException e)
            {
                throw Bad(path, null, $"the header is not valid JSON: {e.Message}", e);
            }
            return (tensors, metadata);
        }

        private static void ReadMetadata(ref Utf8JsonReader reader, string path, Dictionary<string, string> metadata)
        {
            if (reader.TokenType == JsonTokenType.Null) return;
            if (reader.TokenType != JsonTokenType.StartObject)
                throw Bad(path, null, $"'{SafetensorsFile.MetadataKey}' must be an object of strings, not a JSON {Kind(reader.TokenType)}");
            while (true)
            {
                Next(ref reader, path, null);
                if (reader.TokenType == JsonTokenType.EndObject) return;
                string key = String(ref reader, path, null, "a metadata key");
                Next(ref reader, path, null);
                if (reader.TokenType != JsonTokenType.String)
                    throw Bad(path, null, $"metadata entry '{key}' must be a string, not a JSON {Kind(reader.TokenType)}");
                string value = String(ref reader, path, null, $"the value of metadata entry '{key}'");
                if (!metadata.TryAdd(key, value))
                    throw Bad(path, null, $"metadata entry '{key}' appears twice");
            }
        }

        private static RawEntry ReadEntry(ref Utf8JsonReader reader, string path, string name, byte[] json)
        {
            if (name.Length == 0) throw Bad(path, name, "a tensor has an empty name");
            if (reader.TokenType != JsonTokenType.StartObject)
                throw Bad(path, name, $"the entry is a JSON {Kind(reader.TokenType)}, not an object with dtype, shape and data_offsets");
            string? dtype = null;
            long[]? shape = null, offsets = null;
            while (true)
            {
                Next(ref reader, path, name);
                if (reader.TokenType == JsonTokenType.EndObject) break;
                string field = String(ref reader, path, name, "a field name");
                Next(ref reader, path, name);
                if ((field == "dtype" && dtype is not null) || (field == "shape" && shape is not null) || (field == "data_offsets" && offsets is not null))
                    throw Bad(path, name, $"'{field}' appears twice in the entry (which one counts would be a guess; the reference implementation rejects it too)");
                switch (field)
                {
                    case "dtype":
                        if (reader.TokenType != JsonTokenType.String)
                            throw Bad(path, name, $"'dtype' is missing or not a string (it is a JSON {Kind(reader.TokenType)})");
                        dtype = String(ref reader, path, name, "the dtype");
                        break;
                    case "shape":
                        shape = ReadShape(ref reader, path, name);
                        break;
                    case "data_offsets":
                        offsets = ReadOffsets(ref reader, path, name, json);
                        break;
                    default:
                        // Like the reference implementation (serde without deny_unknown_fields), other fields are ignored;
                        // their text must still be valid.
                        SkipValue(ref reader, path, name);
                        break;
                }
            }
            return new RawEntry(name, dtype, shape, offsets);
        }

        private static long[] ReadShape(ref Utf8JsonReader reader, string path, string name)
        {
            if (reader.TokenType != JsonTokenType.StartArray)
                throw Bad(path, name, $"'shape' is missing or not an array (it is {Describe(ref reader)})");
            var shape = new List<long>();
            while (true)
            {
                Next(ref reader, path, name);
                if (reader.TokenType == JsonTokenType.EndArray) return shape.ToArray();
                int i = shape.Count;
                if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out long dim))
                    throw Bad(path, name, $"shape dimension {i} is not an integer in [0, 2^63): it is {Describe(ref reader)}");
                if (dim < 0) throw Bad(path, name, $"shape dimension {i} is negative ({dim})");
                shape.Add(dim);
            }
        }

        private static long[] ReadOffsets(ref Utf8JsonReader reader, string path, string name, byte[] json)
        {
            if (reader.TokenType != JsonTokenType.StartArray)
                throw Bad(path, name, $"'data_offsets' is missing or not an array [begin, end] (it is {Describe(ref reader)})");
            int start = (int)reader.TokenStartIndex;
            var values = new List<long>(2);
            bool valid = true;
            while (true)
            {
                Next(ref reader, path, name);
                if (reader.TokenType == JsonTokenType.EndArray) break;
                if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out long value) && value >= 0)
                    values.Add(value);
                else
                {
                    valid = false;
                    if (reader.TokenType is JsonTokenType.StartArray or JsonTokenType.StartObject) reader.Skip();
                }
            }
            string text = RawText(json.AsSpan(start, (int)reader.BytesConsumed - start));
            if (!valid || values.Count != 2)
                throw Bad(path, name, $"data_offsets {text} are not two non-negative integers [begin, end]");
            return values.ToArray();
        }

        /// <summary>Skips the current value, checking that every string in it is valid text.</summary>
        private static void SkipValue(ref Utf8JsonReader reader, string path, string name)
        {
            if (reader.TokenType == JsonTokenType.String)
            {
                String(ref reader, path, name, "a string");
                return;
            }
            if (reader.TokenType is not (JsonTokenType.StartObject or JsonTokenType.StartArray)) return;
            int depth = reader.CurrentDepth;
            while (true)
            {
                Next(ref reader, path, name);
                if (reader.TokenType is JsonTokenType.EndObject or JsonTokenType.EndArray && reader.CurrentDepth == depth) return;
                if (reader.TokenType is JsonTokenType.String or JsonTokenType.PropertyName)
                    String(ref reader, path, name, "a string");
            }
        }

        private static void Next(ref Utf8JsonReader reader, string path, string? tensor)
        {
            if (!reader.Read())
                throw Bad(path, tensor, "the header ends inside its JSON object");
        }

        /// <summary>The current property name as a tensor name; a name that is not valid text names itself by its raw bytes.</summary>
        private static string TensorName(ref Utf8JsonReader reader, string path)
        {
            try
            {
                return reader.GetString()!;
            }
            catch (InvalidOperationException e)
            {
                string raw = RawText(reader.ValueSpan);
                throw Bad(path, raw, $"the tensor name {Problem(reader.ValueSpan)}", e);
            }
        }

        /// <summary>The current string or property name, unescaped; invalid UTF-8 or a lone surrogate escape is an error.</summary>
        private static string String(ref Utf8JsonReader reader, string path, string? tensor, string what)
        {
            try
            {
                return reader.GetString()!;
            }
            catch (InvalidOperationException e)
            {
                throw Bad(path, tensor, $"{what} \"{RawText(reader.ValueSpan)}\" {Problem(reader.ValueSpan)}", e);
            }
        }

        private static string Problem(ReadOnlySpan<byte> raw)
        {
            if (!Utf8.IsValid(raw))
            {
                int at = 0;
                while (at < raw.Length && Rune.DecodeFromUtf8(raw[at..], out _, out int used) == System.Buffers.OperationStatus.Done) at += used;
                return $"is not valid UTF-8 (byte 0x{raw[at]:X2} at offset {at} of it)";
            }
            return "escapes an unpaired surrogate (\\uD800-\\uDFFF alone), which is not a Unicode character";
        }

        /// <summary>Raw JSON text for messages: valid UTF-8 as it is (escapes included), any other byte as \xNN.</summary>
        internal static string RawText(ReadOnlySpan<byte> raw)
        {
            var text = new StringBuilder(raw.Length);
            while (!raw.IsEmpty)
            {
                if (Rune.DecodeFromUtf8(raw, out var rune, out int used) == System.Buffers.OperationStatus.Done)
                    text.Append(rune.ToString());
                else
                    for (int i = 0; i < used; i++) text.Append(CultureInfo.InvariantCulture, $"\\x{raw[i]:X2}");
                raw = raw[used..];
            }
            return text.ToString();
        }

        /// <summary>"a JSON String \"2\"", "the number 2.5", ... for messages about a value of the wrong kind.</summary>
        private static string Describe(ref Utf8JsonReader reader)
            => reader.TokenType switch
            {
                JsonTokenType.Number => $"the number {RawText(reader.ValueSpan)}",
                JsonTokenType.String => $"the string \"{RawText(reader.ValueSpan)}\"",
                _ => $"a JSON {Kind(reader.TokenType)}",
            };

        private static string Kind(JsonTokenType token) => token switch
        {
            JsonTokenType.StartObject => "Object",
            JsonTokenType.StartArray => "Array",
            JsonTokenType.String => "String",
            JsonTokenType.Number => "Number",
            JsonTokenType.True => "True",
            JsonTokenType.False => "False",
            JsonTokenType.Null => "Null",
            _ => token.ToString(),
        };

        internal static SafetensorsException Bad(string path, string? tensor, string what, Exception? inner = null)
            => new(path, tensor,
                tensor is null
                    ? $"Invalid safetensors file '{path}': {what}."
                    : $"Invalid safetensors file '{path}': tensor '{tensor}': {what}.",
                inner);
    }
}
