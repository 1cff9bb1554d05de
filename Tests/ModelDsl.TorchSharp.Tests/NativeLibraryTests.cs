using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using ModelDsl.TorchSharp.Native;
using TorchSharp;
using Xunit;

namespace ModelDsl.TorchSharp.Tests
{
    /// <summary>TorchSharp loads (thanks to build/ModelDsl.TorchSharp.targets), and the ELF patcher behind it.</summary>
    public sealed class NativeLibraryTests : IDisposable
    {
        private readonly string folder = Directory.CreateTempSubdirectory("modeldsl-elf-").FullName;

        public void Dispose() => Directory.Delete(folder, recursive: true);

        [Fact]
        public void TorchSharp_loads_and_computes()
        {
            TorchSharpRuntime.EnsureLoaded();
            TorchSharpRuntime.EnsureLoaded(); // cheap and idempotent
            using var x = torch.randn(3, 3);
            using var sum = x.sum();
            Assert.True(float.IsFinite(sum.item<float>()));
            using var ones = torch.ones(3, 3);
            Assert.Equal(9f, ones.sum().item<float>());
        }

        [Fact]
        public void Output_copy_of_LibTorchSharp_is_patched_only_where_the_system_needs_it()
        {
            string library = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
            if (!OperatingSystem.IsLinux() || !File.Exists(library)) return; // the fix is Linux-only
            string? system = ElfVersionPatcher.FindSystemLibStdCxx();
            bool systemHasIt = system != null && ElfVersionPatcher.DefinesVersion(system, ElfVersionPatcher.Glibcxx3432);
            var state = ElfVersionPatcher.Inspect(library, ElfVersionPatcher.Glibcxx3432);
            if (systemHasIt)
                Assert.NotEqual(ElfVersionRequirement.Weak, state); // left untouched
            else
                Assert.NotEqual(ElfVersionRequirement.Strong, state); // patched by the build
        }

        [Fact]
        public void Synthetic_library_requirement_is_marked_weak_changing_only_the_flags()
        {
            string path = Path.Combine(folder, "libfake.so");
            var image = ElfImage.Build(needs: new[] { "GLIBCXX_3.4.30", "GLIBCXX_3.4.32" }, defines: null, out var flagOffsets);
            File.WriteAllBytes(path, image);
            var time = new DateTime(2024, 1, 2, 3, 4, 5, DateTimeKind.Utc);
            File.SetLastWriteTimeUtc(path, time);

            Assert.Equal(ElfVersionRequirement.Strong, ElfVersionPatcher.Inspect(path, "GLIBCXX_3.4.32"));
            Assert.True(ElfVersionPatcher.MarkRequirementWeak(path, "GLIBCXX_3.4.32"));

            byte[] after = File.ReadAllBytes(path);
            Assert.Equal(image.Length, after.Length);
            var changed = Enumerable.Range(0, image.Length).Where(i => image[i] != after[i]).ToArray();
            Assert.Equal(new[] { flagOffsets["GLIBCXX_3.4.32"] }, changed);
            Assert.Equal(ElfVersionPatcher.VerFlagWeak, after[flagOffsets["GLIBCXX_3.4.32"]]);
            Assert.Equal(ElfVersionRequirement.Weak, ElfVersionPatcher.Inspect(path, "GLIBCXX_3.4.32"));
            Assert.Equal(ElfVersionRequirement.Strong, ElfVersionPatcher.Inspect(path, "GLIBCXX_3.4.30"));
            Assert.Equal(time, File.GetLastWriteTimeUtc(path)); // MSBuild's incremental copy keeps skipping it
            Assert.Single(Directory.GetFiles(folder)); // no temporary file left behind
        }

        [Fact]
        public void Patching_twice_is_a_no_op()
        {
            string path = Path.Combine(folder, "libfake.so");
            File.WriteAllBytes(path, ElfImage.Build(new[] { "GLIBCXX_3.4.32" }, null, out _));
            Assert.True(ElfVersionPatcher.MarkRequirementWeak(path, "GLIBCXX_3.4.32"));
            byte[] once = File.ReadAllBytes(path);
            var written = File.GetLastWriteTimeUtc(path);
            Assert.False(ElfVersionPatcher.MarkRequirementWeak(path, "GLIBCXX_3.4.32"));
            Assert.Equal(once, File.ReadAllBytes(path));
            Assert.Equal(written, File.GetLastWriteTimeUtc(path));
        }

        [Fact]
        public void Absent_requirement_is_left_alone()
        {
            string path = Path.Combine(folder, "libfake.so");
            byte[] image = ElfImage.Build(new[] { "GLIBCXX_3.4.30" }, null, out _);
            File.WriteAllBytes(path, image);
            Assert.Equal(ElfVersionRequirement.Absent, ElfVersionPatcher.Inspect(path, "GLIBCXX_3.4.32"));
            Assert.False(ElfVersionPatcher.MarkRequirementWeak(path, "GLIBCXX_3.4.32"));
            Assert.Equal(image, File.ReadAllBytes(path));
        }

        [Fact]
        public void NeedsPatch_follows_the_system_libstdcxx_version_definitions()
        {
            string library = Path.Combine(folder, "libfake.so");
            File.WriteAllBytes(library, ElfImage.Build(new[] { "GLIBCXX_3.4.32" }, null, out _));

            string oldSystem = Directory.CreateDirectory(Path.Combine(folder, "old")).FullName;
            File.WriteAllBytes(Path.Combine(oldSystem, "libstdc++.so.6"), ElfImage.Build(null, new[] { "GLIBCXX_3.4", "GLIBCXX_3.4.30" }, out _));
            string newSystem = Directory.CreateDirectory(Path.Combine(folder, "new")).FullName;
            File.WriteAllBytes(Path.Combine(newSystem, "libstdc++.so.6"), ElfImage.Build(null, new[] { "GLIBCXX_3.4.30", "GLIBCXX_3.4.32", "GLIBCXX_3.4.33" }, out _));

            Assert.False(ElfVersionPatcher.DefinesVersion(Path.Combine(oldSystem, "libstdc++.so.6"), "GLIBCXX_3.4.32"));
            Assert.True(ElfVersionPatcher.DefinesVersion(Path.Combine(newSystem, "libstdc++.so.6"), "GLIBCXX_3.4.32"));
            Assert.True(ElfVersionPatcher.NeedsPatch(library, "GLIBCXX_3.4.32", new[] { oldSystem }, out var why));
            Assert.Contains("lacks", why);
            Assert.False(ElfVersionPatcher.NeedsPatch(library, "GLIBCXX_3.4.32", new[] { newSystem }, out why));
            Assert.Contains("provides", why);
        }

        [Fact]
        public void Real_LibTorchSharp_copy_is_patched_and_the_package_cache_is_not_touched()
        {
            string? original = PackageLibrary();
            Assert.True(original != null, "libLibTorchSharp.so of TorchSharp 0.107.0 not found in the NuGet package folder");
            byte[] cacheBefore = File.ReadAllBytes(original!);
            string copy = Path.Combine(folder, "libLibTorchSharp.so");
            File.Copy(original!, copy);

            var state = ElfVersionPatcher.Inspect(copy, ElfVersionPatcher.Glibcxx3432);
            Assert.Equal(ElfVersionRequirement.Strong, state); // TorchSharp 0.107.0 as shipped
            Assert.True(ElfVersionPatcher.MarkRequirementWeak(copy, ElfVersionPatcher.Glibcxx3432));
            Assert.Equal(ElfVersionRequirement.Weak, ElfVersionPatcher.Inspect(copy, ElfVersionPatcher.Glibcxx3432));
            Assert.False(ElfVersionPatcher.MarkRequirementWeak(copy, ElfVersionPatcher.Glibcxx3432));

            byte[] patched = File.ReadAllBytes(copy);
            Assert.Equal(cacheBefore.Length, patched.Length);
            Assert.Single(Enumerable.Range(0, patched.Length), i => patched[i] != cacheBefore[i]);
            Assert.Equal(cacheBefore, File.ReadAllBytes(original!));
        }

        [Fact]
        public void Malformed_files_give_InvalidDataException_naming_the_file()
        {
            string path = Path.Combine(folder, "broken.so");
            File.WriteAllBytes(path, Encoding.ASCII.GetBytes("definitely not an ELF file, but longer than sixty-four bytes......"));
            var e = Assert.Throws<InvalidDataException>(() => ElfVersionPatcher.Inspect(path, "GLIBCXX_3.4.32"));
            Assert.Contains(path, e.Message);
            Assert.Contains("magic", e.Message);

            byte[] image = ElfImage.Build(new[] { "GLIBCXX_3.4.32" }, null, out _);
            File.WriteAllBytes(path, image.AsSpan(0, image.Length - 40).ToArray()); // section headers cut off
            e = Assert.Throws<InvalidDataException>(() => ElfVersionPatcher.MarkRequirementWeak(path, "GLIBCXX_3.4.32"));
            Assert.Contains(path, e.Message);
            Assert.Single(Directory.GetFiles(folder));

            File.WriteAllBytes(path, new byte[10]);
            Assert.Throws<InvalidDataException>(() => ElfVersionPatcher.Inspect(path, "GLIBCXX_3.4.32"));
        }

        private static string? PackageLibrary()
        {
            string root = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } env
                ? env
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            string path = Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
            return File.Exists(path) ? path : null;
        }

        /// <summary>Builds a minimal ELF64 LE shared object with .dynstr, .gnu.version_r and/or .gnu.version_d, byte by byte.</summary>
        private static class ElfImage
        {
            public static byte[] Build(string[]? needs, string[]? defines, out Dictionary<string, int> flagOffsets)
            {
                flagOffsets = new Dictionary<string, int>();
                var dynstr = new List<byte> { 0 };
                int Str(string s) { int at = dynstr.Count; dynstr.AddRange(Encoding.ASCII.GetBytes(s)); dynstr.Add(0); return at; }
                int file = Str("libstdc++.so.6");
                var needNames = (needs ?? Array.Empty<string>()).Select(Str).ToArray();
                var defNames = (defines ?? Array.Empty<string>()).Select(Str).ToArray();

                var image = new List<byte>(new byte[64]);
                void Align() { while (image.Count % 8 != 0) image.Add(0); }
                int dynstrOffset = image.Count;
                image.AddRange(dynstr);
                Align();

                int verneedOffset = image.Count, verneedSize = 0;
                if (needs != null)
                {
                    Put16(image, 1); Put16(image, (ushort)needs.Length); Put32(image, (uint)file); Put32(image, 16); Put32(image, 0);
                    for (int i = 0; i < needs.Length; i++)
                    {
                        Put32(image, 0x0b792650u + (uint)i); // vna_hash (not checked by the patcher)
                        flagOffsets[needs[i]] = image.Count;
                        Put16(image, 0); Put16(image, (ushort)(2 + i)); Put32(image, (uint)needNames[i]);
                        Put32(image, i == needs.Length - 1 ? 0u : 16u);
                    }
                    verneedSize = image.Count - verneedOffset;
                    Align();
                }

                int verdefOffset = image.Count, verdefSize = 0;
                if (defines != null)
                {
                    for (int i = 0; i < defines.Length; i++)
                    {
                        Put16(image, 1); Put16(image, 0); Put16(image, (ushort)(i + 2)); Put16(image, 1);
                        Put32(image, 0x0b792650u + (uint)i); Put32(image, 20); Put32(image, i == defines.Length - 1 ? 0u : 28u);
                        Put32(image, (uint)defNames[i]); Put32(image, 0);
                    }
                    verdefSize = image.Count - verdefOffset;
                    Align();
                }

                var shstr = new List<byte> { 0 };
                int SecName(string s) { int at = shstr.Count; shstr.AddRange(Encoding.ASCII.GetBytes(s)); shstr.Add(0); return at; }
                int nDynstr = SecName(".dynstr"), nNeed = SecName(".gnu.version_r"), nDef = SecName(".gnu.version_d"), nShstr = SecName(".shstrtab");
                int shstrOffset = image.Count;
                image.AddRange(shstr);
                Align();

                var sections = new List<(int Name, uint Type, int Offset, int Size, uint Link, uint Info)>
                {
                    (0, 0, 0, 0, 0, 0),
                    (nDynstr, 3, dynstrOffset, dynstr.Count, 0, 0),
                };
                if (needs != null) sections.Add((nNeed, 0x6ffffffe, verneedOffset, verneedSize, 1, 1));
                if (defines != null) sections.Add((nDef, 0x6ffffffd, verdefOffset, verdefSize, 1, (uint)defines.Length));
                sections.Add((nShstr, 3, shstrOffset, shstr.Count, 0, 0));

                int shoff = image.Count;
                foreach (var s in sections)
                {
                    Put32(image, (uint)s.Name); Put32(image, s.Type); Put64(image, 0); Put64(image, 0);
                    Put64(image, (ulong)s.Offset); Put64(image, (ulong)s.Size); Put32(image, s.Link); Put32(image, s.Info);
                    Put64(image, 1); Put64(image, 0);
                }

                var bytes = image.ToArray();
                new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F', 2, 1, 1 }.CopyTo(bytes, 0);
                BitConverter.GetBytes((ushort)3).CopyTo(bytes, 16);   // ET_DYN
                BitConverter.GetBytes((ushort)62).CopyTo(bytes, 18);  // EM_X86_64
                BitConverter.GetBytes(1u).CopyTo(bytes, 20);
                BitConverter.GetBytes((ulong)shoff).CopyTo(bytes, 40);
                BitConverter.GetBytes((ushort)64).CopyTo(bytes, 52);
                BitConverter.GetBytes((ushort)64).CopyTo(bytes, 58);
                BitConverter.GetBytes((ushort)sections.Count).CopyTo(bytes, 60);
                BitConverter.GetBytes((ushort)(sections.Count - 1)).CopyTo(bytes, 62);
                return bytes;
            }

            private static void Put16(List<byte> b, ushort v) => b.AddRange(BitConverter.GetBytes(v));
            private static void Put32(List<byte> b, uint v) => b.AddRange(BitConverter.GetBytes(v));
            private static void Put64(List<byte> b, ulong v) => b.AddRange(BitConverter.GetBytes(v));
        }
    }
}
