using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using ModelDsl.Checkpoints;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace ModelDsl.TorchSharp.Tests
{
    public sealed class SafetensorsTests : IDisposable
    {
        private readonly string folder = Directory.CreateTempSubdirectory("modeldsl-st-").FullName;

        public SafetensorsTests() => TorchSharpRuntime.EnsureLoaded();

        public void Dispose() => Directory.Delete(folder, recursive: true);

        private string PathOf(string name) => Path.Combine(folder, name);

        private static Dictionary<string, Tensor> SampleTensors()
        {
            torch.manual_seed(7);
            return new Dictionary<string, Tensor>
            {
                ["f32"] = torch.randn(3, 4),
                ["f64"] = torch.randn(2, 3, 2, dtype: ScalarType.Float64),
                ["f16"] = torch.randn(5, dtype: ScalarType.Float16),
                ["bf16"] = torch.randn(2, 2, dtype: ScalarType.BFloat16),
                ["i64"] = torch.arange(-5, 7, dtype: ScalarType.Int64).reshape(3, 4),
                ["i32"] = torch.tensor(new[] { int.MinValue, -1, 0, 1, int.MaxValue }),
                ["i16"] = torch.tensor(new short[] { short.MinValue, 3, short.MaxValue }),
                ["i8"] = torch.tensor(new sbyte[] { -128, 0, 127 }),
                ["u8"] = torch.tensor(new byte[] { 0, 1, 255 }),
                ["bool"] = torch.tensor(new[] { true, false, true }),
                ["scalar"] = torch.tensor(3.5f),
                ["empty"] = torch.zeros(new long[] { 0, 4 }),
                ["strided"] = torch.arange(12, dtype: ScalarType.Float32).reshape(3, 4).t(), // non-contiguous
            };
        }

        private static byte[] Bytes(Tensor t) => t.contiguous().bytes.ToArray();

        [Fact]
        public void Round_trip_is_bit_exact_for_all_dtypes_and_shapes()
        {
            var tensors = SampleTensors();
            string path = PathOf("all.safetensors");
            Safetensors.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode" });

            var header = SafetensorsFile.ReadHeader(path);
            Assert.Equal("pt", header.Metadata["format"]);
            Assert.Equal("ünïcode", header.Metadata["note"]);

            var loaded = Safetensors.Load(path);
            Assert.Equal(tensors.Keys.OrderBy(k => k), loaded.Keys.OrderBy(k => k));
            foreach (var (name, expected) in tensors)
            {
                var actual = loaded[name];
                Assert.Equal(expected.dtype, actual.dtype);
                Assert.Equal(expected.shape, actual.shape);
                Assert.Equal(DeviceType.CPU, actual.device_type);
                Assert.True(Bytes(expected).SequenceEqual(Bytes(actual)), $"bytes of '{name}' differ");
            }
            Assert.Equal(0, loaded["scalar"].dim());
            Assert.Equal(3.5f, loaded["scalar"].item<float>());
            Assert.Equal(new long[] { 0, 4 }, loaded["empty"].shape);
            Assert.Equal(new long[] { 4, 3 }, loaded["strided"].shape);
            Assert.Equal(1f * 4, loaded["strided"][0, 1].item<float>()); // transposed values, not storage order
        }

        [Fact]
        public void Header_is_spec_conformant_and_deterministic()
        {
            string path = PathOf("spec.safetensors");
            var tensors = SampleTensors();
            Safetensors.Save(path, tensors.Reverse());
            byte[] file = File.ReadAllBytes(path);

            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(file);
            Assert.Equal(0, (8 + (long)n) % 8); // data buffer 8-byte aligned
            string json = Encoding.UTF8.GetString(file, 8, (int)n);
            Assert.StartsWith("{", json);
            Assert.Equal(json.TrimEnd(' ').Length, json.TrimEnd().Length); // padding is spaces only
            using var doc = JsonDocument.Parse(json);
            Assert.False(doc.RootElement.TryGetProperty("__metadata__", out _));
            var names = doc.RootElement.EnumerateObject().Select(p => p.Name).ToList();
            Assert.Equal(names.OrderBy(x => x, StringComparer.Ordinal), names); // name order

            long dataLength = file.Length - 8 - (long)n, position = 0;
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                var offsets = p.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                Assert.Equal(position, offsets[0]);
                position = offsets[1];
                var shape = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                Assert.Equal(tensors[p.Name].shape, shape);
                var data = file.AsSpan((int)(8 + (long)n + offsets[0]), (int)(offsets[1] - offsets[0])).ToArray();
                Assert.Equal(Bytes(tensors[p.Name]), data);
            }
            Assert.Equal(dataLength, position);

            string again = PathOf("again.safetensors");
            Safetensors.Save(again, tensors);
            Assert.Equal(file, File.ReadAllBytes(again)); // order of the input does not matter
        }

        /// <summary>A file written by hand, byte by byte, independently of the writer.</summary>
        [Fact]
        public void Hand_written_file_is_read_correctly()
        {
            string json = "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}," +
                          "\"a\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[16,24]},\"s\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[24,26]}," +
                          "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[26,26]}}";
            var data = new List<byte>();
            data.AddRange(BitConverter.GetBytes(-2L));
            data.AddRange(BitConverter.GetBytes(long.MaxValue));
            data.AddRange(BitConverter.GetBytes(1.5f));
            data.AddRange(BitConverter.GetBytes(-0.25f));
            data.AddRange(new byte[] { 0x40, 0x40 }); // bf16 3.0
            string path = PathOf("hand.safetensors");
            File.WriteAllBytes(path, Build(json, data.ToArray()));

            var header = SafetensorsFile.ReadHeader(path);
            Assert.Equal(new[] { "b", "a", "s", "z" }, header.Tensors.Keys);
            Assert.Equal("pt", header.Metadata["format"]);
            Assert.Equal(new long[] { 1, 2 }, header.Tensors["a"].Shape);
            Assert.Equal(16, header.Tensors["a"].Begin);

            var t = Safetensors.Load(path);
            Assert.Equal(ScalarType.Int64, t["b"].dtype);
            Assert.Equal(new[] { -2L, long.MaxValue }, t["b"].data<long>().ToArray());
            Assert.Equal(new[] { 1.5f, -0.25f }, t["a"].data<float>().ToArray());
            Assert.Equal(new long[] { 1, 2 }, t["a"].shape);
            Assert.Equal(ScalarType.BFloat16, t["s"].dtype);
            Assert.Equal(0, t["s"].dim());
            Assert.Equal(3.0f, t["s"].to(ScalarType.Float32).item<float>());
            Assert.Equal(new long[] { 0 }, t["z"].shape);
        }

        private static byte[] Build(string json, byte[] data, long? declaredLength = null)
        {
            byte[] header = Encoding.UTF8.GetBytes(json);
            var file = new byte[8 + header.Length + data.Length];
            BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)(declaredLength ?? header.Length));
            header.CopyTo(file, 8);
            data.CopyTo(file, 8 + header.Length);
            return file;
        }

        private SafetensorsException Corrupt(byte[] content, params string[] expected)
        {
            string path = PathOf("corrupt.safetensors");
            File.WriteAllBytes(path, content);
            var e = Assert.Throws<SafetensorsException>(() => SafetensorsFile.ReadHeader(path));
            Assert.Contains(path, e.Message);
            foreach (var text in expected) Assert.Contains(text, e.Message);
            Assert.Throws<SafetensorsException>(() => Safetensors.Load(path));
            return e;
        }

        private const string OneTensor = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";

        [Fact]
        public void Corrupted_files_are_rejected_with_the_problem_named()
        {
            var good = Build(OneTensor, new byte[8]);
            string ok = PathOf("ok.safetensors");
            File.WriteAllBytes(ok, good);
            Assert.Single(Safetensors.Load(ok));

            Corrupt(good.AsSpan(0, 5).ToArray(), "8-byte header length");
            Corrupt(good.AsSpan(0, good.Length - 3).ToArray(), "'w'", "run past the end of the data buffer");
            Corrupt(good.AsSpan(0, 20).ToArray(), "larger than the rest of the file");
            Corrupt(Build(OneTensor, new byte[8], declaredLength: 200_000_000), "exceeds the limit");
            Corrupt(Build(OneTensor, new byte[8], declaredLength: 1L << 62), "exceeds the limit");
            Corrupt(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", new byte[8]), "not valid JSON");
            Corrupt(Build("[1,2]", Array.Empty<byte>()), "does not start with '{'");
            Corrupt(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", new byte[8]), "'w'", "past the end");
            Corrupt(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", new byte[8]), "'w'", "8 bytes", "needs 3 x 4 = 12");
            Corrupt(Build("{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", new byte[8]), "'w'", "unknown dtype 'Q4'");
            Corrupt(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", new byte[8]), "'w'", "negative");
            Corrupt(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", new byte[16]), "'w'", "twice");
            Corrupt(Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", new byte[12]), "'b'", "overlap");
            Corrupt(Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", new byte[8]), "'a'", "hole");
            Corrupt(Build(OneTensor, new byte[12]), "cover only the first 8");
            Corrupt(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", new byte[8]), "'w'", "data_offsets");
            Corrupt(Build("{\"__metadata__\":{\"n\":1}}", Array.Empty<byte>()), "metadata entry 'n'");
        }

        /// <summary>Flips the high bit of the first byte of <paramref name="text"/> after <paramref name="skip"/> bytes of it.</summary>
        private static byte[] FlipHighBit(byte[] file, string text, int skip)
        {
            int at = file.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) + skip;
            var copy = (byte[])file.Clone();
            copy[at] ^= 0x80;
            return copy;
        }

        [Fact]
        public void Malformed_header_text_is_a_SafetensorsException_naming_file_and_tensor()
        {
            const string Weight = "{\"weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
            // Invalid UTF-8 in a tensor name: 'e' (0x65) becomes 0xE5, a lead byte without its continuation bytes.
            var e = Corrupt(FlipHighBit(Build(Weight, new byte[8]), "weight", 1), "'w\\xE5ight'", "not valid UTF-8");
            Assert.Equal("w\\xE5ight", e.TensorName);
            // A lone surrogate escape in a name (serde_json rejects it; it is no Unicode character).
            e = Corrupt(Build("{\"w\\ud800\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", new byte[8]), "'w\\ud800'", "surrogate");
            Assert.Equal("w\\ud800", e.TensorName);
            // Invalid UTF-8 or surrogates in a dtype, a field name or the metadata.
            e = Corrupt(FlipHighBit(Build(Weight, new byte[8]), "F32", 0), "'weight'", "dtype", "not valid UTF-8");
            Assert.Equal("weight", e.TensorName);
            e = Corrupt(FlipHighBit(Build(Weight, new byte[8]), "shape", 2), "'weight'", "not valid UTF-8");
            Assert.Equal("weight", e.TensorName);
            Corrupt(FlipHighBit(Build("{\"__metadata__\":{\"format\":\"pt\"}}", Array.Empty<byte>()), "pt", 0), "metadata", "not valid UTF-8");
            Corrupt(Build("{\"__metadata__\":{\"k\\udc00\":\"pt\"}}", Array.Empty<byte>()), "metadata", "surrogate");

            // data_offsets that are not two non-negative integers.
            foreach (var offsets in new[] { "[\"a\",4]", "[0,\"8\"]", "[0.0,8]", "[0,8.5]", "[null,8]", "[[0],8]", "[0,{}]", "[0]", "[0,8,8]", "[-1,8]", "[0,1e1]", "[0,99999999999999999999]", "{}", "8" })
            {
                e = Corrupt(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" + offsets + "}}", new byte[8]), "'w'", "data_offsets");
                Assert.Equal("w", e.TensorName);
            }
            // Shapes with a dimension that is not a non-negative 64-bit integer.
            foreach (var shape in new[] { "[\"2\"]", "[2.5]", "[2.0]", "[1e3]", "[99999999999999999999]", "[-1]", "[[2]]", "[true]", "[null]", "{}", "2" })
            {
                e = Corrupt(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":" + shape + ",\"data_offsets\":[0,8]}}", new byte[8]), "'w'", "shape");
                Assert.Equal("w", e.TensorName);
            }
            // A dtype that is not a string.
            e = Corrupt(Build("{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", new byte[8]), "'w'", "'dtype'");
            Assert.Equal("w", e.TensorName);
        }

        [Fact]
        public void Repeated_fields_in_a_tensor_entry_are_rejected()
        {
            // Each of these is accepted by a last-one-wins reader as F32 [2] at [0, 8); serde (the reference) rejects them.
            foreach (var (field, entry) in new[]
            {
                ("dtype", "\"dtype\":\"F64\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]"),
                ("shape", "\"dtype\":\"F32\",\"shape\":[4],\"shape\":[2],\"data_offsets\":[0,8]"),
                ("data_offsets", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4],\"data_offsets\":[0,8]"),
                ("dtype", "\"dtype\":\"F32\",\"shape\":[2],\"d\\u0074ype\":\"F32\",\"data_offsets\":[0,8]"), // the same name, escaped
            })
            {
                var e = Corrupt(Build("{\"w\":{" + entry + "}}", new byte[8]), "'w'", $"'{field}' appears twice");
                Assert.Equal("w", e.TensorName);
            }
        }

        /// <summary>
        /// The reference implementation (huggingface/safetensors, TensorInfo derives serde's Deserialize without
        /// deny_unknown_fields) ignores other fields in a tensor entry; so do we, so that every file it reads loads here.
        /// </summary>
        [Fact]
        public void Unknown_fields_in_a_tensor_entry_are_ignored_like_the_reference_does()
        {
            string path = PathOf("extra.safetensors");
            File.WriteAllBytes(path, Build("{\"w\":{\"dtype\":\"F32\",\"layout\":{\"order\":[\"C\"]},\"shape\":[2],\"data_offsets\":[0,8],\"note\":null}}",
                BitConverter.GetBytes(1.5f).Concat(BitConverter.GetBytes(-2f)).ToArray()));
            Assert.Equal(new[] { 1.5f, -2f }, Safetensors.Load(path)["w"].data<float>().ToArray());
            // Their text must still be valid.
            Corrupt(FlipHighBit(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"note\":[\"abc\"]}}", new byte[8]), "abc", 1),
                "'w'", "not valid UTF-8");
        }

        [Fact]
        public void Zero_element_tensor_whose_strides_overflow_is_rejected_before_allocating()
        {
            // numel is 0, so the data size checks pass, but a strided library computes strides (and byte offsets) as
            // products of the other dimensions. libtorch threw ExternalException "Stride calculation overflowed" for the
            // first and third; the rule (non-zero dimensions x element size fit in a long) also covers the others.
            foreach (var shape in new[] { "[0,1099511627776,1099511627776]", "[1099511627776,0,1099511627776]", "[0,4611686018427387904,4]", "[0,2305843009213693952]" })
            {
                var e = Corrupt(Build("{\"w\":{\"dtype\":\"F32\",\"shape\":" + shape + ",\"data_offsets\":[0,0]}}", Array.Empty<byte>()), "'w'", "64-bit");
                Assert.Equal("w", e.TensorName);
            }
            string path = PathOf("empty.safetensors");
            File.WriteAllBytes(path, Build("{\"w\":{\"dtype\":\"F32\",\"shape\":[0,1099511627776],\"data_offsets\":[0,0]}}", Array.Empty<byte>()));
            Assert.Equal(new long[] { 0, 1L << 40 }, Safetensors.Load(path)["w"].shape); // large but representable: fine
        }

        [Fact]
        public void Tensor_larger_than_memory_is_refused_before_allocating()
        {
            // A valid file whose data buffer claims a terabyte: a sparse file, so it takes no disk space.
            const long TiB = 1L << 40;
            string path = PathOf("huge.safetensors");
            byte[] header = Build("{\"big\":{\"dtype\":\"F32\",\"shape\":[" + (TiB / 4) + "],\"data_offsets\":[0," + TiB + "]}}", Array.Empty<byte>());
            using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
            {
                file.Write(header);
                file.SetLength(header.Length + TiB);
            }
            Assert.Equal(TiB, SafetensorsFile.ReadHeader(path).Tensors["big"].ByteLength); // the format allows it

            var e = Assert.Throws<SafetensorsException>(() => Safetensors.Load(path));
            Assert.Contains(path, e.Message);
            Assert.Contains("'big'", e.Message);
            Assert.Contains("memory", e.Message);
            Assert.Equal("big", e.TensorName);
        }

        [Fact]
        public void Invalid_bool_bytes_are_rejected_on_load()
        {
            string path = PathOf("bool.safetensors");
            File.WriteAllBytes(path, Build("{\"m\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]}}", new byte[] { 1, 7 }));
            var e = Assert.Throws<SafetensorsException>(() => Safetensors.Load(path));
            Assert.Contains("'m'", e.Message);
            Assert.Equal("m", e.TensorName);
        }

        [Fact]
        public void Save_is_atomic()
        {
            var tensors = new Dictionary<string, Tensor> { ["x"] = torch.ones(2, 2) };
            string missingFolder = Path.Combine(folder, "no", "such", "folder");
            Assert.ThrowsAny<IOException>(() => Safetensors.Save(Path.Combine(missingFolder, "x.safetensors"), tensors));
            Assert.False(Directory.Exists(Path.Combine(folder, "no")));

            string path = PathOf("replace.safetensors");
            File.WriteAllText(path, "old content that is not a safetensors file");
            Safetensors.Save(path, tensors);
            Assert.Equal(new long[] { 2, 2 }, SafetensorsFile.ReadHeader(path).Tensors["x"].Shape);
            Assert.Equal(new[] { path }, Directory.GetFiles(folder)); // no temporary file left

            // A failure while writing (here an unsupported dtype) leaves the old file intact and no temp file.
            var bad = new Dictionary<string, Tensor> { ["a"] = torch.ones(2), ["c"] = torch.ones(2, dtype: ScalarType.ComplexFloat32) };
            var error = Assert.Throws<ArgumentException>(() => Safetensors.Save(path, bad));
            Assert.Contains("'c'", error.Message);
            Assert.Equal(new long[] { 2, 2 }, SafetensorsFile.ReadHeader(path).Tensors["x"].Shape);
            Assert.Equal(new[] { path }, Directory.GetFiles(folder));
        }

        [Fact]
        public void Save_removes_stale_temporary_files_of_its_target_and_nothing_else()
        {
            string path = PathOf("model.safetensors");
            string Hex(char c) => new string(c, 32);
            // What an interrupted save of this target leaves behind (the process died before the rename).
            string stale = PathOf($".model.safetensors.{Guid.NewGuid():N}.tmp");
            string stale2 = PathOf($".model.safetensors.{Hex('a')}.tmp");
            File.WriteAllBytes(stale, new byte[4096]);
            File.WriteAllBytes(stale2, new byte[16]);
            // Similar names that are not this target's temporary files.
            string[] unrelated =
            {
                PathOf($".other.safetensors.{Hex('a')}.tmp"),       // another target
                PathOf($".model.safetensors.{Hex('A')}.tmp"),       // not a Guid("N") (upper case)
                PathOf($".model.safetensors.{new string('a', 31)}.tmp"),
                PathOf($".model.safetensors.{Hex('g')}.tmp"),       // not hexadecimal
                PathOf($".model.safetensors.{Hex('a')}.tmp.bak"),
                PathOf($"model.safetensors.{Hex('a')}.tmp"),        // not hidden
                PathOf($"..model.safetensors.{Hex('a')}.tmp"),
                PathOf($".model.safetensors.x.{Hex('a')}.tmp"),
                PathOf(".model.safetensors.tmp"),
            };
            foreach (var file in unrelated) File.WriteAllText(file, "keep me");
            // A temporary file that a save in progress (another process) still holds: never taken from under it.
            string live = PathOf($".model.safetensors.{Hex('b')}.tmp");
            using (var writer = new FileStream(live, FileMode.CreateNew, FileAccess.Write, FileShare.Delete))
            {
                writer.Write(new byte[8]);
                Safetensors.Save(path, new Dictionary<string, Tensor> { ["x"] = torch.ones(2) });
                Assert.True(File.Exists(live));
            }

            Assert.False(File.Exists(stale));
            Assert.False(File.Exists(stale2));
            foreach (var file in unrelated) Assert.Equal("keep me", File.ReadAllText(file));
            Assert.Equal(new long[] { 2 }, SafetensorsFile.ReadHeader(path).Tensors["x"].Shape);
            // Once released, the next save removes it too.
            ModuleWeights.Save(new TwoLayers(), path);
            Assert.False(File.Exists(live));
            Assert.Equal(unrelated.Length + 1, Directory.GetFiles(folder).Length);
        }

        [Fact]
        public void Save_rejects_bad_names()
        {
            string path = PathOf("names.safetensors");
            Assert.Throws<ArgumentException>(() => Safetensors.Save(path, new[] { KeyValuePair.Create("__metadata__", torch.ones(1)) }));
            Assert.Throws<ArgumentException>(() => Safetensors.Save(path, new[] { KeyValuePair.Create("", torch.ones(1)) }));
            var dup = Assert.Throws<ArgumentException>(() => Safetensors.Save(path,
                new[] { KeyValuePair.Create("a", torch.ones(1)), KeyValuePair.Create("a", torch.ones(1)) }));
            Assert.Contains("'a'", dup.Message);
            Assert.False(File.Exists(path));
        }

        // ---- ModuleWeights ------------------------------------------------------------------------------

        private sealed class TwoLayers : nn.Module<Tensor, Tensor>
        {
            public readonly global::TorchSharp.Modules.Linear fc1;
            public readonly global::TorchSharp.Modules.Linear fc2;

            public TwoLayers(long hidden = 8) : base(nameof(TwoLayers))
            {
                fc1 = nn.Linear(4, hidden);
                fc2 = nn.Linear(hidden, 3);
                register_buffer("steps", torch.zeros(1, dtype: ScalarType.Int64));
                register_buffer("scratch", torch.zeros(2), persistent: false);
                RegisterComponents();
            }

            public override Tensor forward(Tensor x) => fc2.forward(fc1.forward(x).relu());
        }

        private static Dictionary<string, byte[]> Snapshot(nn.Module m)
            => m.named_parameters().Select(p => (p.name, (Tensor)p.parameter))
                .Concat(m.named_buffers())
                .ToDictionary(p => p.Item1, p => Bytes(p.Item2));

        [Fact]
        public void ModuleWeights_round_trip()
        {
            torch.manual_seed(1);
            var source = new TwoLayers();
            using (torch.no_grad()) source.get_buffer("steps")!.fill_(42);
            string path = PathOf("model.safetensors");
            ModuleWeights.Save(source, path, new Dictionary<string, string> { ["format"] = "pt" });

            var header = SafetensorsFile.ReadHeader(path);
            Assert.Equal(new[] { "fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight", "steps" }, header.Tensors.Keys);

            torch.manual_seed(2);
            var target = new TwoLayers();
            ModuleWeights.Load(target, path, "TinyMlp");
            Assert.Equal(Snapshot(source).Where(kv => kv.Key != "scratch"), Snapshot(target).Where(kv => kv.Key != "scratch"));
            Assert.True(target.fc1.weight!.requires_grad); // still a trainable parameter

            using var x = torch.randn(5, 4);
            Assert.Equal(Bytes(source.forward(x)), Bytes(target.forward(x)));
        }

        [Fact]
        public void ModuleWeights_converts_dtype_and_maps_names()
        {
            torch.manual_seed(3);
            var source = new TwoLayers();
            string path = PathOf("bf16.safetensors");
            var tensors = source.named_parameters().Select(p => KeyValuePair.Create("model." + p.name, p.parameter.to(ScalarType.BFloat16)))
                .Append(KeyValuePair.Create("model.steps", torch.tensor(new[] { 5 })))          // I32 into an int64 buffer
                .Append(KeyValuePair.Create("attn.masked_bias", torch.ones(1)));                   // skipped by the map
            Safetensors.Save(path, tensors);

            var target = new TwoLayers();
            ModuleWeights.Load(target, path, "TinyMlp", name => name.StartsWith("model.") ? name["model.".Length..] : null);
            Assert.Equal(ScalarType.Float32, target.fc1.weight!.dtype);
            Assert.True(target.fc1.weight.allclose(source.fc1.weight!.to(ScalarType.BFloat16).to(ScalarType.Float32)));
            Assert.Equal(5L, target.get_buffer("steps")!.item<long>());
        }

        [Fact]
        public void Missing_unexpected_and_misshaped_tensors_are_all_reported_and_nothing_is_copied()
        {
            torch.manual_seed(4);
            var other = new TwoLayers(hidden: 6);
            string path = PathOf("gpt.safetensors");
            var tensors = other.named_parameters().Where(p => p.name != "fc2.bias")
                .Select(p => KeyValuePair.Create(p.name, (Tensor)p.parameter))
                .Append(KeyValuePair.Create("extra.weight", torch.ones(3)));
            Safetensors.Save(path, tensors);

            var model = new TwoLayers(hidden: 8);
            var before = Snapshot(model);
            var e = Assert.Throws<SafetensorsException>(() => ModuleWeights.Load(model, path, "TinyGpt"));
            Assert.Contains("Model 'TinyGpt': 2 parameters are missing from gpt.safetensors: 'fc2.bias', 'steps'", e.Message);
            Assert.Contains("'extra.weight'", e.Message);
            Assert.Contains("match no parameter", e.Message);
            Assert.Contains("Model 'TinyGpt': tensor 'fc1.weight' in gpt.safetensors has shape [6, 4]; the model expects [8, 4] (dimension 0: 6 vs 8)", e.Message);
            Assert.Contains("tensor 'fc1.bias' in gpt.safetensors has shape [6]; the model expects [8] (dimension 0: 6 vs 8)", e.Message);
            Assert.Contains("tensor 'fc2.weight' in gpt.safetensors has shape [3, 6]; the model expects [3, 8] (dimension 1: 6 vs 8)", e.Message);
            Assert.Equal(before, Snapshot(model)); // all-or-nothing
        }

        [Fact]
        public void Single_missing_tensor_and_rank_mismatch_messages()
        {
            var model = new TwoLayers();
            string path = PathOf("one.safetensors");
            var tensors = model.named_parameters().Select(p => KeyValuePair.Create(p.name, (Tensor)p.parameter))
                .Where(p => p.Key != "fc1.bias")
                .Append(KeyValuePair.Create("steps", torch.zeros(1, 1, dtype: ScalarType.Int64)));
            Safetensors.Save(path, tensors);
            var e = Assert.Throws<SafetensorsException>(() => ModuleWeights.Load(model, path, "TinyGpt"));
            Assert.Contains("Model 'TinyGpt': 'fc1.bias' is missing from one.safetensors", e.Message);
            Assert.Contains("tensor 'steps' in one.safetensors has shape [1, 1]; the model expects [1] (2 dimension(s) vs 1)", e.Message);
            Assert.Equal("fc1.bias", e.TensorName);
        }

        [Fact]
        public void Integer_tensor_into_floating_parameter_is_rejected()
        {
            var model = new TwoLayers();
            var before = Snapshot(model);
            string path = PathOf("ints.safetensors");
            var tensors = model.named_parameters().Select(p => KeyValuePair.Create(p.name,
                    p.name == "fc1.weight" ? p.parameter.to(ScalarType.Int32) : (Tensor)p.parameter))
                .Append(KeyValuePair.Create("steps", torch.zeros(1, dtype: ScalarType.Int64)));
            Safetensors.Save(path, tensors);
            var e = Assert.Throws<SafetensorsException>(() => ModuleWeights.Load(model, path, "TinyGpt"));
            Assert.Contains("Model 'TinyGpt': tensor 'fc1.weight' in ints.safetensors has dtype I32, which cannot be converted to the model's Float32", e.Message);
            Assert.Equal(before, Snapshot(model));
        }

        private sealed class Tied : nn.Module<Tensor, Tensor>
        {
            public readonly global::TorchSharp.Modules.Embedding wte;
            public readonly global::TorchSharp.Modules.Linear lm_head;

            public Tied() : base(nameof(Tied))
            {
                wte = nn.Embedding(10, 4);
                lm_head = nn.Linear(4, 10, hasBias: false);
                lm_head.weight = wte.weight!;
                RegisterComponents();
            }

            public override Tensor forward(Tensor x) => lm_head.forward(wte.forward(x));
        }

        [Fact]
        public void Tied_weights_are_saved_once_and_loaded_into_both_names()
        {
            torch.manual_seed(5);
            var source = new Tied();
            string path = PathOf("tied.safetensors");
            ModuleWeights.Save(source, path);
            var names = SafetensorsFile.ReadHeader(path).Tensors.Keys.ToList();
            Assert.Single(names);
            Assert.Equal(source.named_parameters().First().name, names[0]);

            var target = new Tied();
            ModuleWeights.Load(target, path, "TiedLm");
            Assert.Equal(Bytes(source.wte.weight!), Bytes(target.wte.weight!));
            Assert.Equal(Bytes(source.wte.weight!), Bytes(target.lm_head.weight!));
        }

        [Fact]
        public void File_truncated_between_header_and_data_reads_leaves_every_parameter_unchanged()
        {
            // Large enough (~230 KB) that the reader's 64 KiB buffer cannot already hold the end of the file.
            torch.manual_seed(11);
            var source = new TwoLayers(hidden: 8192);
            using (torch.no_grad()) source.get_buffer("steps")!.fill_(7);
            string path = PathOf("growing.safetensors");
            ModuleWeights.Save(source, path);
            var last = SafetensorsFile.ReadHeader(path).Tensors.Values.MaxBy(t => t.Begin)!;
            Assert.Equal("steps", last.Name); // the last tensor in the file is the last one read

            torch.manual_seed(12);
            var model = new TwoLayers(hidden: 8192);
            var before = Snapshot(model);
            // Another program rewrites the file after the header was read: the data now ends inside 'steps'.
            ModuleWeights.BeforeDataRead.Value = p =>
            {
                using var writer = new FileStream(p, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
                writer.SetLength(writer.Length - 3);
            };
            try
            {
                var e = Assert.Throws<SafetensorsException>(() => ModuleWeights.Load(model, path, "TinyMlp"));
                Assert.Contains(path, e.Message);
                Assert.Contains("'steps'", e.Message);
                Assert.Contains("the file ended while reading", e.Message);
                Assert.Equal("steps", e.TensorName);
            }
            finally
            {
                ModuleWeights.BeforeDataRead.Value = null;
            }
            Assert.Equal(before, Snapshot(model)); // all-or-nothing: fc1 and fc2 were read before the failure
        }

        [Fact]
        public void File_that_changes_size_during_the_load_is_rejected_and_nothing_is_copied()
        {
            var source = new TwoLayers();
            string path = PathOf("appended.safetensors");
            ModuleWeights.Save(source, path);
            var model = new TwoLayers();
            var before = Snapshot(model);
            // Every tensor's bytes are still there, but the file is not the one whose header was read.
            ModuleWeights.BeforeDataRead.Value = p =>
            {
                using var writer = new FileStream(p, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
                writer.Write(new byte[16]);
            };
            try
            {
                var e = Assert.Throws<SafetensorsException>(() => ModuleWeights.Load(model, path, "TinyMlp"));
                Assert.Contains(path, e.Message);
                Assert.Contains("changed while it was read", e.Message);
            }
            finally
            {
                ModuleWeights.BeforeDataRead.Value = null;
            }
            Assert.Equal(before, Snapshot(model));
        }

        [Fact]
        public void Invalid_file_error_names_the_model()
        {
            string path = PathOf("bad.safetensors");
            File.WriteAllBytes(path, new byte[3]);
            var e = Assert.Throws<SafetensorsException>(() => ModuleWeights.Load(new TwoLayers(), path, "TinyGpt"));
            Assert.StartsWith("Model 'TinyGpt': ", e.Message);
            Assert.Contains(path, e.Message);
            var missing = Assert.Throws<SafetensorsException>(() => ModuleWeights.Load(new TwoLayers(), PathOf("nope.safetensors"), "TinyGpt"));
            Assert.Contains("nope.safetensors", missing.Message);
        }
    }
}
