// MSBuild inline task (RoslynCodeTaskFactory), used by LibStdCxxWorkaround.targets.
// Marks one symbol-version requirement of ELF64 little-endian shared objects as weak
// (VER_FLG_WEAK in vna_flags), but only when the host's libstdc++ lacks that version.
using System;
using System.IO;
using System.Text;

public class WeakenElfVersionNeed : Microsoft.Build.Utilities.Task
{
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlgWeak = 0x2;

    [Microsoft.Build.Framework.Required]
    public Microsoft.Build.Framework.ITaskItem[] Files { get; set; }

    [Microsoft.Build.Framework.Required]
    public string Version { get; set; }

    public override bool Execute()
    {
        var hostLib = FindHostLibStdCxx();
        if (hostLib == null)
        {
            Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low,
                "libstdc++.so.6 not found on this host; leaving TorchSharp natives unpatched.");
            return true;
        }

        if (Contains(File.ReadAllBytes(hostLib), Encoding.ASCII.GetBytes(Version + "\0")))
        {
            Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low,
                hostLib + " provides " + Version + "; no patch needed.");
            return true;
        }

        foreach (var item in Files)
        {
            var path = item.GetMetadata("FullPath");
            try
            {
                var bytes = File.ReadAllBytes(path);
                var result = Weaken(bytes, Version);
                if (result == null)
                {
                    Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low, path + ": no " + Version + " requirement.");
                    continue;
                }

                if (result == "already")
                    continue;

                // Write beside and move over: never edits a hard-linked NuGet cache file in place.
                var temp = path + ".patching";
                File.WriteAllBytes(temp, bytes);
                File.Delete(path);
                File.Move(temp, path);
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal,
                    "Marked " + Version + " weak in " + path + " (host libstdc++ lacks it).");
            }
            catch (Exception e)
            {
                Log.LogError("Could not patch " + path + ": " + e.Message);
                return false;
            }
        }

        return !Log.HasLoggedErrors;
    }

    private static string FindHostLibStdCxx()
    {
        var dirs = new System.Collections.Generic.List<string>();
        var ldPath = Environment.GetEnvironmentVariable("LD_LIBRARY_PATH");
        if (!string.IsNullOrEmpty(ldPath))
            dirs.AddRange(ldPath.Split(new[] { ':' }, StringSplitOptions.RemoveEmptyEntries));
        dirs.AddRange(new[]
        {
            "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib", "/lib",
        });
        foreach (var dir in dirs)
        {
            var candidate = Path.Combine(dir, "libstdc++.so.6");
            if (File.Exists(candidate))
                return candidate;
        }

        return null;
    }

    private static bool Contains(byte[] haystack, byte[] needle)
    {
        for (var i = 0; i <= haystack.Length - needle.Length; i++)
        {
            if (haystack[i] != needle[0])
                continue;
            var match = true;
            for (var j = 1; j < needle.Length && match; j++)
                match = haystack[i + j] == needle[j];
            if (match)
                return true;
        }

        return false;
    }

    // Returns null when the file has no such requirement, "already" when it is weak already,
    // "patched" when bytes were changed.
    private static string Weaken(byte[] elf, string version)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException("not a 64-bit little-endian ELF file");

        var shoff = (long)BitConverter.ToUInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);

        for (var s = 0; s < shnum; s++)
        {
            var sh = shoff + (long)s * shentsize;
            if (BitConverter.ToUInt32(elf, (int)sh + 4) != ShtGnuVerneed)
                continue;

            var offset = (long)BitConverter.ToUInt64(elf, (int)sh + 24);
            var link = BitConverter.ToUInt32(elf, (int)sh + 40);
            var count = BitConverter.ToUInt32(elf, (int)sh + 44);
            var strtab = (long)BitConverter.ToUInt64(elf, (int)(shoff + (long)link * shentsize) + 24);

            var need = offset;
            for (uint n = 0; n < count; n++)
            {
                int auxCount = BitConverter.ToUInt16(elf, (int)need + 2);
                var aux = need + BitConverter.ToUInt32(elf, (int)need + 8);
                for (var a = 0; a < auxCount; a++)
                {
                    var name = ReadString(elf, strtab + BitConverter.ToUInt32(elf, (int)aux + 8));
                    if (name == version)
                    {
                        var flagsAt = (int)aux + 4;
                        var flags = BitConverter.ToUInt16(elf, flagsAt);
                        if ((flags & VerFlgWeak) != 0)
                            return "already";
                        flags |= VerFlgWeak;
                        elf[flagsAt] = (byte)(flags & 0xff);
                        elf[flagsAt + 1] = (byte)(flags >> 8);
                        return "patched";
                    }

                    aux += BitConverter.ToUInt32(elf, (int)aux + 12);
                }

                need += BitConverter.ToUInt32(elf, (int)need + 12);
            }
        }

        return null;
    }

    private static string ReadString(byte[] elf, long at)
    {
        var end = (int)at;
        while (end < elf.Length && elf[end] != 0)
            end++;
        return Encoding.ASCII.GetString(elf, (int)at, end - (int)at);
    }
}
