using System.Net.Sockets;

namespace EmbedCache.Deploy.Tests;

/// <summary>
/// A fact that needs a reachable Docker engine (DOCKER_HOST, or /var/run/docker.sock answering).
/// Skipped with that reason elsewhere; deploy/build-images.sh --engine installs and starts one.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class DockerFactAttribute : FactAttribute
{
    public DockerFactAttribute()
    {
        if (Unreachable is { } reason)
            Skip = reason;
    }

    /// <summary>Why no engine can be used here, or null when one answers.</summary>
    public static string? Unreachable { get; } = EngineReachable(out var why) ? null
        : $"no Docker engine reachable ({why}); run deploy/build-images.sh --engine to install and start one";

    private static bool EngineReachable(out string why)
    {
        if (Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 } host)
        {
            why = "";
            return !host.StartsWith("unix://", StringComparison.Ordinal) || Connects(host["unix://".Length..], out why);
        }

        return Connects("/var/run/docker.sock", out why);
    }

    private static bool Connects(string socketPath, out string why)
    {
        if (!File.Exists(socketPath))
        {
            why = $"{socketPath} does not exist";
            return false;
        }

        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.Connect(new UnixDomainSocketEndPoint(socketPath));
            why = "";
            return true;
        }
        catch (SocketException e)
        {
            why = $"{socketPath}: {e.Message}";
            return false;
        }
    }
}
