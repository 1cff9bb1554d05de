// This file is compiled twice:
//  * into ModelDsl.TorchSharp.dll (MODELDSL_TORCHSHARP_LIBRARY is defined there), where TorchSharpRuntime uses
//    it to diagnose a failed native load and the tests exercise it;
//  * by MSBuild's RoslynCodeTaskFactory from build/ModelDsl.TorchSharp.targets (nothing defined), which adds the
//    PatchLibTorchSharpGlibcxx task at the bottom.
// It must therefore compile against netstandard2.0 without extra packages: no Span, no BinaryPrimitives,
// no File.Move(overwrite), no records.
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace ModelDsl.TorchSharp.Native
{
    /// <summary>What <see cref="ElfVersionPatcher.Inspect"/> found about one symbol-version requirement.</summary>
    public enum ElfVersionRequirement
    {
        /// <summary>The file does not require the version (or has no .gnu.version_r section).</summary>
        Absent = 0,
        /// <summary>The file requires the version and the dynamic loader refuses to load it without.</summary>
        Strong = 1,
        /// <summary>The requirement carries VER_FLG_WEAK: the loader accepts its absence.</summary>
        Weak = 2,
    }

    /// <summary>
    /// A small ELF64 little-endian reader/patcher for symbol-version sections. It marks a version requirement
    /// of a shared library weak (VER_FLG_WEAK in the Vernaux entry of .gnu.version_r), which is how
    /// ModelDsl.TorchSharp makes TorchSharp's libLibTorchSharp.so (built against GCC 13's libstdc++, requiring
    /// GLIBCXX_3.4.32 only for the never-called <c>std::ios_base_library_init()</c>) load on Debian 12 /
    /// Ubuntu 22.04.
    /// </summary>
    public static class ElfVersionPatcher
    {
        /// <summary>The version TorchSharp 0.107's native library requires and older libstdc++ lacks.</summary>
        public const string Glibcxx3432 = "GLIBCXX_3.4.32";

        /// <summary>VER_FLG_WEAK in vna_flags.</summary>
        public const ushort VerFlagWeak = 0x2;

        private const uint ShtGnuVerdef = 0x6ffffffd;
        private const uint ShtGnuVerneed = 0x6ffffffe;
        private const uint ShtStrtab = 3;
        private const int MaxChain = 1 << 16;

        /// <summary>Default folders searched for the system's libstdc++.so.6.</summary>
        public static readonly string[] DefaultLibStdCxxFolders =
        {
            "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib/aarch64-linux-gnu",
            "/usr/lib64", "/lib64", "/usr/lib", "/lib",
        };

        /// <summary>Reports whether (and how) the ELF file at <paramref name="path"/> requires <paramref name="version"/>.</summary>
        /// <exception cref="InvalidDataException">The file is not a well-formed ELF64 little-endian file.</exception>
        public static ElfVersionRequirement Inspect(string path, string version)
        {
            using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
            {
                long flagsOffset;
                ushort flags;
                if (!FindVernaux(stream, path, version, out flagsOffset, out flags)) return ElfVersionRequirement.Absent;
                return (flags & VerFlagWeak) != 0 ? ElfVersionRequirement.Weak : ElfVersionRequirement.Strong;
            }
        }

        /// <summary>True when the ELF file at <paramref name="path"/> defines <paramref name="version"/> (.gnu.version_d).</summary>
        /// <exception cref="InvalidDataException">The file is not a well-formed ELF64 little-endian file.</exception>
        public static bool DefinesVersion(string path, string version)
        {
            using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
            {
                var elf = ElfFile.Read(stream, path);
                foreach (var section in elf.Sections)
                {
                    if (section.Type != ShtGnuVerdef) continue;
                    byte[] data = elf.ReadSection(section);
                    byte[] strings = elf.ReadLinkedStrings(section);
                    long offset = 0;
                    for (int i = 0; i < MaxChain; i++)
                    {
                        Need(data, offset, 20, path, "Verdef");
                        ushort cnt = U16(data, offset + 6);
                        uint aux = U32(data, offset + 12);
                        uint next = U32(data, offset + 16);
                        // The first Verdaux names the version itself; the others name its parents.
                        if (cnt > 0)
                        {
                            long auxOffset = offset + aux;
                            Need(data, auxOffset, 8, path, "Verdaux");
                            if (CString(strings, U32(data, auxOffset), path) == version) return true;
                        }
                        if (next == 0) break;
                        offset += next;
                    }
                }
                return false;
            }
        }

        /// <summary>
        /// The first libstdc++.so.6 found in <paramref name="folders"/> (default: the usual Linux library folders),
        /// or null when there is none.
        /// </summary>
        public static string? FindSystemLibStdCxx(IEnumerable<string>? folders = null)
        {
            foreach (var folder in folders ?? DefaultLibStdCxxFolders)
            {
                if (string.IsNullOrWhiteSpace(folder)) continue;
                string candidate = Path.Combine(folder.Trim(), "libstdc++.so.6");
                if (File.Exists(candidate)) return candidate;
            }
            return null;
        }

        /// <summary>
        /// Sets VER_FLG_WEAK on the requirement of <paramref name="version"/> in the ELF file at <paramref name="path"/>.
        /// The file is rewritten through a temporary file in the same folder and an atomic rename (which also breaks a
        /// hard link to a package cache instead of modifying the cache); permissions and the last-write time are kept.
        /// Returns true when the file was changed, false when the requirement was absent or already weak (idempotent).
        /// </summary>
        /// <exception cref="InvalidDataException">The file is not a well-formed ELF64 little-endian file.</exception>
        public static bool MarkRequirementWeak(string path, string version)
        {
            long flagsOffset;
            ushort flags;
            DateTime lastWrite;
            using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
            {
                if (!FindVernaux(stream, path, version, out flagsOffset, out flags)) return false;
                if ((flags & VerFlagWeak) != 0) return false;
            }
            lastWrite = File.GetLastWriteTimeUtc(path);

            string folder = Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
            string temp = Path.Combine(folder, "." + Path.GetFileName(path) + "." + Guid.NewGuid().ToString("N") + ".tmp");
            try
            {
                File.Copy(path, temp, true); // keeps the Unix mode bits
                using (var stream = new FileStream(temp, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
                {
                    // Re-check on the copy: the original may have been replaced between the two opens.
                    long copyOffset;
                    ushort copyFlags;
                    if (!FindVernaux(stream, path, version, out copyOffset, out copyFlags) || (copyFlags & VerFlagWeak) != 0)
                        return false;
                    ushort patched = (ushort)(copyFlags | VerFlagWeak);
                    stream.Position = copyOffset;
                    stream.WriteByte((byte)patched);
                    stream.WriteByte((byte)(patched >> 8));
                    stream.Flush(true);
                }
                // Same size and time as the package's file: MSBuild's incremental copy keeps skipping it.
                File.SetLastWriteTimeUtc(temp, lastWrite);
                File.Replace(temp, path, null); // rename(2) on Unix: readers see the old or the new file, never half of one
                return true;
            }
            finally
            {
                if (File.Exists(temp)) File.Delete(temp);
            }
        }

        /// <summary>
        /// Decides whether <paramref name="libraryPath"/> needs the patch: it requires <paramref name="version"/>
        /// strongly and the system's libstdc++ (searched in <paramref name="libStdCxxFolders"/>) does not define it.
        /// <paramref name="reason"/> says why, in one line.
        /// </summary>
        public static bool NeedsPatch(string libraryPath, string version, IEnumerable<string>? libStdCxxFolders, out string reason)
        {
            var requirement = Inspect(libraryPath, version);
            if (requirement != ElfVersionRequirement.Strong)
            {
                reason = requirement == ElfVersionRequirement.Weak ? version + " is already a weak requirement" : "it does not require " + version;
                return false;
            }
            string? system = FindSystemLibStdCxx(libStdCxxFolders);
            if (system == null)
            {
                reason = "it requires " + version + " and no system libstdc++.so.6 was found to provide it";
                return true;
            }
            bool defines;
            try { defines = DefinesVersion(system, version); }
            catch (Exception e) when (e is InvalidDataException || e is IOException || e is UnauthorizedAccessException)
            {
                reason = "it requires " + version + " and " + system + " could not be read (" + e.Message + ")";
                return true;
            }
            if (defines)
            {
                reason = system + " provides " + version;
                return false;
            }
            reason = "it requires " + version + ", which " + system + " lacks";
            return true;
        }

        private static bool FindVernaux(Stream stream, string path, string version, out long flagsFileOffset, out ushort flags)
        {
            var elf = ElfFile.Read(stream, path);
            foreach (var section in elf.Sections)
            {
                if (section.Type != ShtGnuVerneed) continue;
                byte[] data = elf.ReadSection(section);
                byte[] strings = elf.ReadLinkedStrings(section);
                long offset = 0;
                // sh_info holds the number of Verneed entries; the vn_next chain is authoritative, bounded by both.
                uint needCount = section.Info == 0 ? MaxChain : Math.Min(section.Info, (uint)MaxChain);
                for (uint n = 0; n < needCount; n++)
                {
                    Need(data, offset, 16, path, "Verneed");
                    ushort cnt = U16(data, offset + 2);
                    uint aux = U32(data, offset + 8);
                    uint next = U32(data, offset + 12);
                    long auxOffset = offset + aux;
                    for (int a = 0; a < cnt; a++)
                    {
                        Need(data, auxOffset, 16, path, "Vernaux");
                        ushort auxFlags = U16(data, auxOffset + 4);
                        uint name = U32(data, auxOffset + 8);
                        uint auxNext = U32(data, auxOffset + 12);
                        if (CString(strings, name, path) == version)
                        {
                            flagsFileOffset = section.Offset + auxOffset + 4;
                            flags = auxFlags;
                            return true;
                        }
                        if (auxNext == 0) break;
                        auxOffset += auxNext;
                    }
                    if (next == 0) break;
                    offset += next;
                }
            }
            flagsFileOffset = 0;
            flags = 0;
            return false;
        }

        private static void Need(byte[] data, long offset, int size, string path, string what)
        {
            if (offset < 0 || offset + size > data.Length)
                throw new InvalidDataException(path + ": malformed ELF file: a " + what + " entry at section offset " + offset + " runs past its section (" + data.Length + " bytes).");
        }

        private static string CString(byte[] strings, uint offset, string path)
        {
            if (offset >= strings.Length)
                throw new InvalidDataException(path + ": malformed ELF file: string offset " + offset + " is outside its string table (" + strings.Length + " bytes).");
            int end = Array.IndexOf(strings, (byte)0, (int)offset);
            if (end < 0) throw new InvalidDataException(path + ": malformed ELF file: unterminated string at offset " + offset + ".");
            return Encoding.ASCII.GetString(strings, (int)offset, end - (int)offset);
        }

        internal static ushort U16(byte[] b, long o) => (ushort)(b[o] | b[o + 1] << 8);
        internal static uint U32(byte[] b, long o) => (uint)(b[o] | b[o + 1] << 8 | b[o + 2] << 16 | b[o + 3] << 24);
        internal static ulong U64(byte[] b, long o) => U32(b, o) | (ulong)U32(b, o + 4) << 32;

        private struct Section
        {
            public uint Type;
            public long Offset;
            public long Size;
            public uint Link;
            public uint Info;
        }

        private sealed class ElfFile
        {
            private readonly Stream stream;
            private readonly string path;
            private readonly long length;
            public readonly List<Section> Sections = new List<Section>();

            private ElfFile(Stream stream, string path)
            {
                this.stream = stream;
                this.path = path;
                length = stream.Length;
            }

            public static ElfFile Read(Stream stream, string path)
            {
                var elf = new ElfFile(stream, path);
                if (elf.length < 64) throw elf.Bad("the file is shorter than an ELF64 header (" + elf.length + " bytes)");
                byte[] header = elf.ReadAt(0, 64, "ELF header");
                if (header[0] != 0x7f || header[1] != (byte)'E' || header[2] != (byte)'L' || header[3] != (byte)'F')
                    throw elf.Bad("no ELF magic number");
                if (header[4] != 2) throw elf.Bad("not a 64-bit ELF file (EI_CLASS " + header[4] + ")");
                if (header[5] != 1) throw elf.Bad("not a little-endian ELF file (EI_DATA " + header[5] + ")");
                ulong shoff = U64(header, 40);
                ushort shentsize = U16(header, 58);
                ulong shnum = U16(header, 60);
                if (shoff == 0) return elf; // no section headers: nothing to find
                if (shentsize < 64) throw elf.Bad("section header size " + shentsize + " < 64");
                if (shoff > (ulong)elf.length) throw elf.Bad("section header table offset " + shoff + " is past the end of the file");
                if (shnum == 0)
                {
                    // More than 0xff00 sections: the real count is sh_size of section 0.
                    byte[] first = elf.ReadAt((long)shoff, 64, "section header 0");
                    shnum = U64(first, 32);
                }
                if (shnum > 1 << 20 || (ulong)elf.length - shoff < shnum * shentsize)
                    throw elf.Bad(shnum + " section headers of " + shentsize + " bytes at offset " + shoff + " do not fit in the file");
                byte[] table = elf.ReadAt((long)shoff, checked((int)(shnum * shentsize)), "section header table");
                for (long i = 0; i < (long)shnum; i++)
                {
                    long o = i * shentsize;
                    ulong offset = U64(table, o + 24), size = U64(table, o + 32);
                    elf.Sections.Add(new Section
                    {
                        Type = U32(table, o + 4),
                        Offset = offset > long.MaxValue ? -1 : (long)offset,
                        Size = size > long.MaxValue ? -1 : (long)size,
                        Link = U32(table, o + 40),
                        Info = U32(table, o + 44),
                    });
                }
                return elf;
            }

            public byte[] ReadSection(Section section)
            {
                if (section.Offset < 0 || section.Size < 0 || section.Size > int.MaxValue || section.Offset + section.Size > length)
                    throw Bad("a section (type 0x" + section.Type.ToString("x") + ", offset " + section.Offset + ", size " + section.Size + ") runs past the end of the file");
                return ReadAt(section.Offset, (int)section.Size, "section");
            }

            public byte[] ReadLinkedStrings(Section section)
            {
                if (section.Link == 0 || section.Link >= Sections.Count)
                    throw Bad("a version section links to string table " + section.Link + ", which does not exist");
                Section strtab = Sections[(int)section.Link];
                if (strtab.Type != ShtStrtab)
                    throw Bad("a version section links to section " + section.Link + ", which is not a string table");
                return ReadSection(strtab);
            }

            private byte[] ReadAt(long offset, int count, string what)
            {
                if (offset < 0 || offset + count > length) throw Bad("the " + what + " runs past the end of the file");
                var buffer = new byte[count];
                stream.Position = offset;
                int read = 0;
                while (read < count)
                {
                    int n = stream.Read(buffer, read, count - read);
                    if (n <= 0) throw Bad("unexpected end of file while reading the " + what);
                    read += n;
                }
                return buffer;
            }

            private InvalidDataException Bad(string why) => new InvalidDataException(path + ": malformed ELF file: " + why + ".");
        }
    }
}

#if !MODELDSL_TORCHSHARP_LIBRARY
namespace ModelDsl.TorchSharp.Build
{
    using Microsoft.Build.Framework;
    using ModelDsl.TorchSharp.Native;

    /// <summary>
    /// MSBuild task (compiled by RoslynCodeTaskFactory): marks GLIBCXX_3.4.32 weak in the copies of
    /// libLibTorchSharp.so passed in <see cref="Files"/>, when they require it and the system's libstdc++ lacks it.
    /// </summary>
    public sealed class PatchLibTorchSharpGlibcxx : Microsoft.Build.Utilities.Task
    {
        /// <summary>Copies of libLibTorchSharp.so in an output or publish folder (never the package cache).</summary>
        [Required]
        public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();

        /// <summary>The version to weaken (default GLIBCXX_3.4.32).</summary>
        public string Version { get; set; } = ElfVersionPatcher.Glibcxx3432;

        /// <summary>Folders searched for the system's libstdc++.so.6, separated by ';' (default: the usual ones).</summary>
        public string LibStdCxxFolders { get; set; } = "";

        /// <summary>
        /// The files that were changed. A file checked successfully (patched, or found not to need it) also gets an empty
        /// stamp file at its "Stamp" metadata, if any, so that later builds can skip it; older stamps beside it are removed.
        /// </summary>
        [Output]
        public ITaskItem[] Patched { get; set; } = Array.Empty<ITaskItem>();

        public override bool Execute()
        {
            var folders = string.IsNullOrWhiteSpace(LibStdCxxFolders)
                ? null
                : LibStdCxxFolders.Split(new[] { ';' }, StringSplitOptions.RemoveEmptyEntries);
            var patched = new List<ITaskItem>();
            foreach (var item in Files)
            {
                string path = item.GetMetadata("FullPath");
                if (!File.Exists(path)) continue;
                try
                {
                    string reason;
                    if (!ElfVersionPatcher.NeedsPatch(path, Version, folders, out reason))
                    {
                        Log.LogMessage(MessageImportance.Low, "ModelDsl.TorchSharp: " + path + " left as is: " + reason + ".");
                    }
                    else if (ElfVersionPatcher.MarkRequirementWeak(path, Version))
                    {
                        Log.LogMessage(MessageImportance.High, "ModelDsl.TorchSharp: marked " + Version + " weak in " + path + " (" + reason + ").");
                        patched.Add(item);
                    }
                    WriteStamp(path, item.GetMetadata("Stamp"));
                }
                catch (Exception e) when (e is InvalidDataException || e is IOException || e is UnauthorizedAccessException)
                {
                    Log.LogWarning(null, "MDTS001", null, path, 0, 0, 0, 0,
                        "ModelDsl.TorchSharp: could not patch " + path + " for " + Version + ": " + e.Message +
                        " TorchSharp may fail to load on this system (see ModelDsl.TorchSharp's README).");
                }
            }
            Patched = patched.ToArray();
            return !Log.HasLoggedErrors;
        }

        private static void WriteStamp(string path, string stamp)
        {
            if (string.IsNullOrEmpty(stamp)) return;
            string? folder = Path.GetDirectoryName(path);
            if (folder == null) return;
            foreach (var old in Directory.GetFiles(folder, Path.GetFileName(path) + ".*.modeldsl-checked"))
                if (!string.Equals(Path.GetFullPath(old), Path.GetFullPath(stamp), StringComparison.Ordinal)) File.Delete(old);
            File.WriteAllText(stamp, "");
        }
    }
}
#endif
