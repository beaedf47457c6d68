using System.Text.RegularExpressions;

namespace EmbedCache.TestSupport;

/// <summary>The addresses a service child process reports once it listens (its ports may have been 0).</summary>
public sealed record ServiceAddresses(Uri Grpc, Uri Http);

public static partial class ServiceListening
{
    /// <summary>Waits for the service's "EmbedCache listening: gRPC …, HTTP …" line and returns both addresses.</summary>
    public static async Task<ServiceAddresses> WaitForListeningAsync(this ChildProcess child, string what = "the service to listen", TimeSpan? timeout = null)
    {
        var m = await child.WaitForLineAsync(ListeningLine(), what, timeout);
        return new ServiceAddresses(new Uri(m.Groups["grpc"].Value), new Uri(m.Groups["http"].Value));
    }

    [GeneratedRegex(@"listening: gRPC (?<grpc>https?://\S+?)/?, HTTP (?<http>https?://\S+?)/?$")]
    private static partial Regex ListeningLine();
}
