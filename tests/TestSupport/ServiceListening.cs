using System.Text.RegularExpressions;

namespace EmbedCache.TestSupport;

/// <summary>
/// The addresses a service child process reports once it listens (its ports may have been 0), and its Unix socket
/// (<c>unix:///path</c>) when it has one.
/// </summary>
public sealed record ServiceAddresses(Uri Grpc, Uri Http, Uri? UnixSocket = null);

public static partial class ServiceListening
{
    /// <summary>
    /// Waits until the service serves: its "EmbedCache listening: gRPC …, HTTP …" line (the ports open at once) and
    /// then its "EmbedCache ready" line (the store recovered, the encoders loaded). Returns both addresses.
    /// </summary>
    public static async Task<ServiceAddresses> WaitForListeningAsync(this ChildProcess child, string what = "the service to listen", TimeSpan? timeout = null)
    {
        var addresses = await child.WaitForPortsAsync(what, timeout);
        await child.WaitForLineAsync(ReadyLine(), what + " (its 'EmbedCache ready' line)", timeout);
        return addresses;
    }

    /// <summary>Waits only for the "EmbedCache listening" line: the ports are open, the engine may still be starting.</summary>
    public static async Task<ServiceAddresses> WaitForPortsAsync(this ChildProcess child, string what = "the service to open its ports", TimeSpan? timeout = null)
    {
        var m = await child.WaitForLineAsync(ListeningLine(), what, timeout);
        return new ServiceAddresses(new Uri(m.Groups["grpc"].Value), new Uri(m.Groups["http"].Value),
            m.Groups["unix"].Success ? new Uri(m.Groups["unix"].Value) : null);
    }

    [GeneratedRegex(@"listening: gRPC (?<grpc>https?://\S+?)/?, HTTP (?<http>https?://\S+?)/?(?:, gRPC (?<unix>unix:\S+))?$")]
    private static partial Regex ListeningLine();

    [GeneratedRegex(@"EmbedCache ready: ")]
    private static partial Regex ReadyLine();
}
