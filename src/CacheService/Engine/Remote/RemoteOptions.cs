using System.Text.RegularExpressions;

namespace EmbedCache.Engine.Remote;

/// <summary>
/// The remote tier (host section <c>EmbedCache:Store:Remote</c>): a Redis-protocol cluster (Microsoft Garnet in cluster
/// mode, or Redis Cluster) that EmbedCache nodes share behind their local tiers. No endpoints: no remote tier.
/// </summary>
public sealed partial class RemoteOptions
{
    /// <summary>
    /// Cluster nodes, <c>host:port</c>; any reachable one is enough to discover the rest. An entry may list several,
    /// separated by commas (<c>EmbedCache__Store__Remote__Endpoints__0=a:7000,b:7001</c>).
    /// </summary>
    public List<string> Endpoints { get; set; } = [];

    /// <summary>The endpoints, one per entry, with comma-separated entries split.</summary>
    public IReadOnlyList<string> EndpointList =>
        Endpoints.SelectMany(e => e.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();

    /// <summary>ACL user (Redis 6+ / Garnet); null: the default user.</summary>
    public string? User { get; set; }

    public string? Password { get; set; }

    /// <summary>Connect with TLS.</summary>
    public bool Tls { get; set; }

    /// <summary>A PEM file of the CA that signed the nodes' certificates (TLS); null: the system's trust store.</summary>
    public string? TlsCaFile { get; set; }

    /// <summary>The name the nodes' certificates are checked against (TLS); null: the endpoint's host.</summary>
    public string? TlsHost { get; set; }

    /// <summary>How long connecting to the cluster may take, at start and on reconnects.</summary>
    public int ConnectTimeoutMs { get; set; } = 5000;

    /// <summary>
    /// How long one remote read or write batch may take before it counts as a failure: the most a lookup waits on the
    /// cluster while the circuit breaker is closed.
    /// </summary>
    public int OperationTimeoutMs { get; set; } = 500;

    /// <summary>Consecutive failures (errors or timeouts) that open the circuit breaker.</summary>
    public int BreakerFailures { get; set; } = 3;

    /// <summary>How long the breaker stays open (the remote tier skipped) before one call probes the cluster again.</summary>
    public int BreakerOpenMs { get; set; } = 2000;

    /// <summary>Every key this service writes starts with it, so deployments can share a cluster. Letters, digits, <c>_.:-</c>.</summary>
    public string KeyPrefix { get; set; } = "ec";

    /// <summary>Bytes of writes that may wait for the cluster (write-behind). When full, new writes are dropped and counted.</summary>
    public long WriteQueueBytes { get; set; } = 256L << 20;

    /// <summary>Items per shard of a distributed prewarm.</summary>
    public int ShardItems { get; set; } = 2048;

    /// <summary>Lifetime of a shard's lease; the holder renews it at a third of this. A node that dies loses it after this long.</summary>
    public int LeaseMs { get; set; } = 10000;

    /// <summary>This node's name in leases and job progress; null: host name and process id.</summary>
    public string? NodeName { get; set; }

    public bool Enabled => EndpointList.Count > 0;

    /// <summary>Error lines naming the key (relative to <c>Remote:</c>); empty when valid.</summary>
    public IEnumerable<string> Validate()
    {
        var errors = new List<string>();
        if (!Enabled)
            return errors;
        foreach (var endpoint in EndpointList)
        {
            if (!TryParseEndpoint(endpoint, out _, out _))
                errors.Add($"Remote:Endpoints: '{endpoint}' is not host:port");
        }

        if (ConnectTimeoutMs < 1)
            errors.Add($"Remote:ConnectTimeoutMs must be >= 1 (was {ConnectTimeoutMs})");
        if (OperationTimeoutMs < 1)
            errors.Add($"Remote:OperationTimeoutMs must be >= 1 (was {OperationTimeoutMs})");
        if (BreakerFailures < 1)
            errors.Add($"Remote:BreakerFailures must be >= 1 (was {BreakerFailures})");
        if (BreakerOpenMs < 1)
            errors.Add($"Remote:BreakerOpenMs must be >= 1 (was {BreakerOpenMs})");
        if (!PrefixPattern().IsMatch(KeyPrefix))
            errors.Add($"Remote:KeyPrefix must be 1..64 of letters, digits and _.:- (was '{KeyPrefix}')");
        if (WriteQueueBytes < 1 << 20)
            errors.Add($"Remote:WriteQueueBytes must be >= {1 << 20} (was {WriteQueueBytes})");
        if (ShardItems < 1)
            errors.Add($"Remote:ShardItems must be >= 1 (was {ShardItems})");
        if (LeaseMs < 300)
            errors.Add($"Remote:LeaseMs must be >= 300 (was {LeaseMs})");
        if (Tls && TlsCaFile is not null && !File.Exists(TlsCaFile))
            errors.Add($"Remote:TlsCaFile: no file at '{TlsCaFile}'");
        if (User is not null && Password is null)
            errors.Add("Remote:User is set without Remote:Password");
        return errors;
    }

    internal static bool TryParseEndpoint(string endpoint, out string host, out int port)
    {
        host = "";
        port = 0;
        var colon = endpoint.LastIndexOf(':');
        if (colon <= 0 || colon == endpoint.Length - 1)
            return false;
        host = endpoint[..colon].Trim('[', ']');
        return int.TryParse(endpoint.AsSpan(colon + 1), out port) && port is > 0 and < 65536 && host.Length > 0;
    }

    [GeneratedRegex(@"^[A-Za-z0-9_.:\-]{1,64}$")]
    private static partial Regex PrefixPattern();
}
