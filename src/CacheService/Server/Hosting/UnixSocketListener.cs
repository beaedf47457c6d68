using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using EmbedCache.Server.Configuration;
using EmbedCache.Server.Platform;
using Microsoft.Extensions.Options;

namespace EmbedCache.Server.Hosting;

/// <summary>
/// The gRPC listener on a Unix domain socket (<c>EmbedCache:UnixSocketPath</c>): Kestrel asks it for the bound socket
/// (<see cref="Bind"/>, through <c>SocketTransportOptions.CreateBoundListenSocket</c>). It replaces a stale socket file
/// left by a crashed instance, refuses to start over a live one or over a file that is not a socket, gives the socket
/// its final mode (0600, or 0660 and <c>EmbedCache:UnixSocketGroup</c>) before anyone can connect, and removes it when
/// the service stops.
/// </summary>
/// <remarks>
/// Why a private directory: bind(2) creates the socket file with the process umask, and a connection accepted in the
/// moment before a chmod keeps working after it. umask is process-wide, and the engine creates its SaveDir files on
/// another thread while Kestrel binds, so tightening it around the bind would change their modes too. Instead the socket
/// is bound in a fresh 0700 directory beside its path (nobody else can reach it there), given its group and mode, and
/// then renamed into place: rename(2) is atomic, so the path never shows the socket with any other mode. The listening
/// socket keeps working under its new name; only its own address (getsockname) still names the private path.
/// </remarks>
internal sealed partial class UnixSocketListener(
    IOptions<EmbedCacheOptions> options, IHostApplicationLifetime lifetime, ILogger<UnixSocketListener> logger) : IDisposable
{
    /// <summary>sun_path is 108 bytes, its terminating NUL included.</summary>
    public const int MaxPathBytes = 107;

    private const string Key = EmbedCacheOptions.SectionName + ":" + nameof(EmbedCacheOptions.UnixSocketPath);
    private const string GroupKey = EmbedCacheOptions.SectionName + ":" + nameof(EmbedCacheOptions.UnixSocketGroup);

    /// <summary>The private directory's name, <c>.ec</c> and six random characters, plus <c>/s</c>: what a bind adds to the socket's directory.</summary>
    private const int PrivateSuffixBytes = 12;

    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode OwnerAndGroup = OwnerOnly | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;

    private readonly Lock _lock = new();
    private ulong _inode;
    private bool _bound;

    /// <summary>The socket's full path, or null when the Unix socket is off.</summary>
    public string? Path { get; } = FullPath(options.Value);

    public static bool IsEnabled(EmbedCacheOptions options) => !string.IsNullOrWhiteSpace(options.UnixSocketPath);

    public static string? FullPath(EmbedCacheOptions options) =>
        IsEnabled(options) ? System.IO.Path.GetFullPath(options.UnixSocketPath!) : null;

    /// <summary>Validation lines naming the key: a relative or too long path, a missing directory, an unknown group.</summary>
    public static IEnumerable<string> Validate(EmbedCacheOptions options)
    {
        if (!IsEnabled(options))
        {
            if (!string.IsNullOrWhiteSpace(options.UnixSocketGroup))
                yield return $"{GroupKey} is set but {Key} is not";
            yield break;
        }

        var path = options.UnixSocketPath!;
        if (!System.IO.Path.IsPathRooted(path) || path.Contains('\0', StringComparison.Ordinal))
        {
            yield return $"{Key} must be an absolute path (was '{path}')";
            yield break;
        }

        if (path.EndsWith('/'))
        {
            yield return $"{Key} must name a file, not a directory (was '{path}')";
            yield break;
        }

        var full = System.IO.Path.GetFullPath(path);
        var directory = System.IO.Path.GetDirectoryName(full)!;
        var bytes = Encoding.UTF8.GetByteCount(full);
        var directoryBytes = Encoding.UTF8.GetByteCount(directory);
        if (bytes > MaxPathBytes)
            yield return $"{Key} is {bytes} bytes long; a Unix socket path is at most {MaxPathBytes} (was '{full}')";
        else if (directoryBytes + PrivateSuffixBytes > MaxPathBytes)
            yield return $"{Key}: its directory '{directory}' is {directoryBytes} bytes long; at most {MaxPathBytes - PrivateSuffixBytes} (the socket is bound in a private directory beside it first)";
        else if (!Directory.Exists(directory))
            yield return $"{Key}: directory '{directory}' does not exist";

        if (!string.IsNullOrWhiteSpace(options.UnixSocketGroup) && UnixFileAccess.GroupId(options.UnixSocketGroup) is null)
            yield return $"{GroupKey}: no group named '{options.UnixSocketGroup}' on this machine";
    }

    /// <summary>Whether <paramref name="endpoint"/> is this listener's socket (Kestrel binds every endpoint through one hook).</summary>
    public bool Owns(UnixDomainSocketEndPoint endpoint) => Path is not null && endpoint.ToString() == Path;

    /// <summary>Binds the socket for Kestrel, with its final mode and group already set (see the remarks).</summary>
    public Socket Bind()
    {
        var path = Path ?? throw new InvalidOperationException("The Unix socket is not configured.");
        if (OperatingSystem.IsWindows())
            throw new StartupException($"{Key}: Unix socket files are not supported on Windows");
        var group = options.Value.UnixSocketGroup is { Length: > 0 } g && !string.IsNullOrWhiteSpace(g) ? g : null;
        var gid = group is null ? (uint?)null
            : UnixFileAccess.GroupId(group) ?? throw new StartupException($"{GroupKey}: no group named '{group}' on this machine");

        var stale = ReplaceableExisting(path);
        var privateDirectory = CreatePrivateDirectory(System.IO.Path.GetDirectoryName(path)!);
        var temporary = System.IO.Path.Combine(privateDirectory, "s");
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(temporary));
            if (!UnixFileAccess.TrySetGroupAndMode(temporary, gid, gid is null ? OwnerOnly : OwnerAndGroup, out var error))
            {
                throw new StartupException(
                    $"{GroupKey}: cannot give the socket to group '{group}': {error} (the service must run as root or as a member of the group)");
            }

            if (rename(temporary, path) != 0)
                throw new StartupException($"{Key}: cannot create '{path}': {Marshal.GetLastPInvokeErrorMessage()}");
            lock (_lock)
            {
                _inode = Status(path, out _)?.Inode ?? 0;
                _bound = true;
            }
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        finally
        {
            // Empty after the rename; holds the socket when binding failed.
            try
            {
                Directory.Delete(privateDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
        }

        if (stale)
            StaleSocketReplaced(logger, path);
        lifetime.ApplicationStopped.Register(Remove);
        return socket;
    }

    /// <summary>Removes the socket file, if it is still the one this service bound. Called when the service has stopped.</summary>
    public void Remove()
    {
        lock (_lock)
        {
            if (!_bound || Path is null)
                return;
            _bound = false;
            // Never another file that took the path meanwhile.
            if (Status(Path, out _) is { IsSocket: true } status && status.Inode == _inode)
                File.Delete(Path);
        }
    }

    public void Dispose() => Remove();

    /// <summary>
    /// Whether a file is at <paramref name="path"/> that bind may replace: a socket nobody listens on (left by a crashed
    /// instance). A live socket or any other kind of file stops the start-up.
    /// </summary>
    private static bool ReplaceableExisting(string path)
    {
        var status = Status(path, out var error);
        if (error != 0)
            throw new StartupException($"{Key}: cannot examine '{path}': {Marshal.GetPInvokeErrorMessage(error)}");
        if (status is null)
            return false;
        if (!status.Value.IsSocket)
            throw new StartupException($"{Key}: '{path}' exists and is not a socket; remove it or choose another path");

        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return true;
        }
        catch (SocketException e)
        {
            throw new StartupException($"{Key}: cannot tell whether '{path}' is in use: {e.Message}");
        }

        throw new StartupException($"{Key}: another process is listening on '{path}' (another EmbedCache instance?); stop it or choose another path");
    }

    private static string CreatePrivateDirectory(string parent)
    {
        for (var attempt = 0; ; attempt++)
        {
            var candidate = System.IO.Path.Combine(parent, ".ec" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(3)));
            if (mkdir(candidate, 0b111_000_000) == 0)
                return candidate;
            var error = Marshal.GetLastPInvokeError();
            if (error != 17 /* EEXIST */ || attempt == 16)
                throw new StartupException($"{Key}: cannot create a directory in '{parent}' to bind the socket: {Marshal.GetPInvokeErrorMessage(error)}");
        }
    }

    /// <summary>
    /// lstat of <paramref name="path"/> (type and inode); null when nothing is there (<paramref name="error"/> 0) or
    /// when it cannot be examined (<paramref name="error"/> the errno).
    /// </summary>
    internal static FileStatus? Status(string path, out int error)
    {
        error = 0;
        if (statx(-100 /* AT_FDCWD */, path, 0x100 /* AT_SYMLINK_NOFOLLOW */, 0x7ff /* STATX_BASIC_STATS */, out var status) == 0)
            return new FileStatus((status.Mode & 0xF000) == 0xC000 /* S_IFSOCK */, status.Inode);
        var errno = Marshal.GetLastPInvokeError();
        if (errno is not 2 /* ENOENT */)
            error = errno;
        return null;
    }

    internal readonly record struct FileStatus(bool IsSocket, ulong Inode);

    [LoggerMessage(Level = LogLevel.Information, Message = "Replaced a stale socket file at {Path} (nothing listened on it)")]
    private static partial void StaleSocketReplaced(ILogger logger, string path);

    /// <summary>The head of struct statx, whose layout is the same on every Linux architecture.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    private struct StatX
    {
        [FieldOffset(28)]
        public ushort Mode;

        [FieldOffset(32)]
        public ulong Inode;
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int statx(int directory, string path, int flags, uint mask, out StatX status);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int mkdir(string path, uint mode);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int rename(string from, string to);
}
