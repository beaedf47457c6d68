using System.Runtime.InteropServices;

namespace EmbedCache.Server.Platform;

/// <summary>
/// Who may open the service's local files (the Unix socket, shared-memory rings): their group and mode, set one way
/// for both.
/// </summary>
public static partial class UnixFileAccess
{
    /// <summary>
    /// Gives <paramref name="path"/> to group <paramref name="gid"/> (unless null), then sets its mode: the group first,
    /// so the mode never grants the group's bits to the group the file had before. False, with errno's message, when
    /// the process may not give the file to that group (it must be root or a member).
    /// </summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public static bool TrySetGroupAndMode(string path, uint? gid, UnixFileMode mode, out string? error)
    {
        error = null;
        if (gid is { } id && chown(path, uint.MaxValue, id) != 0)
        {
            error = Marshal.GetLastPInvokeErrorMessage();
            return false;
        }

        File.SetUnixFileMode(path, mode);
        return true;
    }

    /// <summary>The id of a group by name (NSS: /etc/group, LDAP, …), or null when there is none.</summary>
    public static uint? GroupId(string name)
    {
        var buffer = new byte[1024];
        while (true)
        {
            var error = getgrnam_r(name, out var group, buffer, (nuint)buffer.Length, out var result);
            if (error == 34 /* ERANGE */ && buffer.Length < (1 << 20))
            {
                buffer = new byte[buffer.Length * 4];
                continue;
            }

            return error == 0 && result != 0 ? group.Gid : null;
        }
    }

    /// <summary>struct group on 64-bit Linux.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Group
    {
        public nint Name;
        public nint Password;
        public uint Gid;
        public nint Members;
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int chown(string path, uint owner, uint group);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int getgrnam_r(string name, out Group group, byte[] buffer, nuint length, out nint result);
}
