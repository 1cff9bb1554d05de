using System;
using System.IO;
using System.Runtime.CompilerServices;
using DiffPlex.DiffBuilder;
using DiffPlex.DiffBuilder.Model;
using Xunit.Sdk;

namespace ModelDsl.Generators.Tests
{
    /// <summary>
    /// Snapshot assertions with Verify's file conventions (the Verify package is not served here):
    /// "<c>Class.Method.verified.cs</c>" beside the test file; on mismatch "<c>.received.cs</c>" is written and the
    /// test fails with a line diff. Set MODELDSL_ACCEPT_SNAPSHOTS=1 to accept received output.
    /// </summary>
    internal static class Snapshot
    {
        public const string AcceptVariable = "MODELDSL_ACCEPT_SNAPSHOTS";

        public static void Verify(string actual, string name, [CallerFilePath] string testFile = "", [CallerMemberName] string method = "")
        {
            var folder = Path.GetDirectoryName(testFile)!;
            var stem = Path.Combine(folder, $"{Path.GetFileNameWithoutExtension(testFile)}.{method}{(name.Length > 0 ? "_" + name : "")}");
            var verifiedPath = stem + ".verified.cs";
            var receivedPath = stem + ".received.cs";
            actual = actual.Replace("\r\n", "\n");

            var expected = File.Exists(verifiedPath) ? File.ReadAllText(verifiedPath).Replace("\r\n", "\n") : null;
            if (expected == actual)
            {
                File.Delete(receivedPath);
                return;
            }
            if (Environment.GetEnvironmentVariable(AcceptVariable) == "1")
            {
                File.WriteAllText(verifiedPath, actual);
                File.Delete(receivedPath);
                return;
            }

            File.WriteAllText(receivedPath, actual);
            throw new XunitException(expected is null
                ? $"No snapshot yet: review {receivedPath} and rename it to .verified.cs (or rerun with {AcceptVariable}=1)."
                : $"Generated code differs from {Path.GetFileName(verifiedPath)} (received: {receivedPath}; accept with {AcceptVariable}=1):\n{Diff(expected, actual)}");
        }

        private static string Diff(string expected, string actual)
        {
            var diff = InlineDiffBuilder.Diff(expected, actual);
            var text = new System.Text.StringBuilder();
            int shown = 0;
            for (int i = 0; i < diff.Lines.Count && shown < 60; i++)
            {
                var line = diff.Lines[i];
                if (line.Type == ChangeType.Unchanged) continue;
                text.Append(line.Type == ChangeType.Inserted ? "+ " : "- ").Append(line.Position).Append(": ").AppendLine(line.Text);
                shown++;
            }
            return text.ToString();
        }
    }
}
