namespace EmbedCache.Client;

/// <summary>How a client reaches and calls an EmbedCache service.</summary>
public sealed class EmbedCacheClientOptions
{
    /// <summary>The service's gRPC address, e.g. <c>http://127.0.0.1:50051</c>.</summary>
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
    /// in tests); null uses the default. The client owns it once given.
    /// </summary>
    public HttpMessageHandler? HttpHandler { get; set; }

    /// <summary>Largest message the client accepts (a response of N × dim embeddings).</summary>
    public int MaxReceiveMessageBytes { get; set; } = 256 << 20;

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
