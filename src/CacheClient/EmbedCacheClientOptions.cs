using System.Diagnostics.CodeAnalysis;

namespace EmbedCache.CacheClient;

/// <summary>How a client reaches and calls an EmbedCache service.</summary>
public sealed class EmbedCacheClientOptions
{
    /// <summary>
    /// The service's gRPC address: <c>http://127.0.0.1:50051</c>, <c>https://host:port</c> (TLS), or
    /// <c>unix:///run/embedcache.sock</c>, the service's Unix domain socket (<c>EmbedCache:UnixSocketPath</c>; an
    /// absolute path, <c>unix:/run/embedcache.sock</c> also works).
    /// </summary>
    public Uri Address { get; set; } = new("http://127.0.0.1:50051");

    /// <summary>Sent as <c>authorization: Bearer &lt;key&gt;</c> when set.</summary>
    public string? ApiKey { get; set; }

    /// <summary>Deadline of unary calls (lookups, stats, ...). Streams have none by default.</summary>
    public TimeSpan CallTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Attempts (first try included) for a call that fails with UNAVAILABLE.</summary>
    public int MaxAttempts { get; set; } = 5;

    /// <summary>First retry delay; doubles each attempt up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Longest delay between retries.</summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The HTTP handler the channel sends through (custom TLS validation, proxies, fault injection
    /// in tests); null uses the default. The client owns it once given. With a <c>unix://</c> address the client
    /// makes its connections go to the socket: the handler must be a <see cref="SocketsHttpHandler"/>, or
    /// <see cref="DelegatingHandler"/>s around one (or around nothing: the client puts its own in), whose
    /// <see cref="SocketsHttpHandler.ConnectCallback"/> is not set; any other handler is an <see cref="ArgumentException"/>.
    /// </summary>
    public HttpMessageHandler? HttpHandler { get; set; }

    /// <summary>Largest message the client accepts (a response of N × dim embeddings).</summary>
    public int MaxReceiveMessageBytes { get; set; } = 256 << 20;

    /// <summary>The socket path of a <c>unix:</c> <see cref="Address"/>, or null for an http(s) address.</summary>
    public string? UnixSocketPath => UnixSocketPathOf(Address);

    /// <summary>
    /// Parses an address as the command lines take it: an <c>http://</c> or <c>https://</c> URL, or
    /// <c>unix:///absolute/path</c> (also <c>unix:/absolute/path</c>).
    /// </summary>
    public static bool TryParseAddress(string? text, [NotNullWhen(true)] out Uri? address)
    {
        address = null;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri))
            return false;
        if (uri.Scheme is "http" or "https" || (uri.Scheme == "unix" && UnixSocketPathOf(uri) is not null))
            address = uri;
        return address is not null;
    }

    /// <summary>The socket path of a <c>unix:</c> address (an absolute path, no host), or null.</summary>
    internal static string? UnixSocketPathOf(Uri address)
    {
        if (!address.IsAbsoluteUri || address.Scheme != "unix" || !string.IsNullOrEmpty(address.Host))
            return null;
        var path = Uri.UnescapeDataString(address.AbsolutePath);
        return path.Length > 1 && path[0] == '/' && !path.EndsWith('/') ? path : null;
    }

    /// <summary>
    /// Epoch streams over a shared-memory ring: <see cref="SharedMemoryMode.Auto"/> when the client talks to the
    /// service over its Unix socket (the service is on this host), gRPC otherwise.
    /// </summary>
    public SharedMemoryMode SharedMemory { get; set; } = SharedMemoryMode.Auto;

    /// <summary>Size of the shared-memory ring to ask for; 0 takes the service's SharedMemory:RingBytes.</summary>
    public long SharedMemoryRingBytes { get; set; }

    /// <summary>Called with one line when the client first picks an epoch-stream path (shared memory or gRPC), and why.</summary>
    public Action<string>? Log { get; set; }
}

/// <summary>Whether epoch streams use the shared-memory ring (see <see cref="EmbedCacheClientOptions.SharedMemory"/>).</summary>
public enum SharedMemoryMode
{
    /// <summary>Shared memory over a Unix socket; gRPC otherwise.</summary>
    Auto,

    /// <summary>Always gRPC.</summary>
    Off,

    /// <summary>Shared memory or an error: for checking that a co-located trainer really gets the fast path.</summary>
    Require,
}
