using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;

namespace EmbedCache.Client;

/// <summary>
/// Entry point for trainers and ops: one HTTP/2 channel to an EmbedCache service and typed
/// calls over its contract. Thread-safe; create one per process and share it.
/// </summary>
public sealed class EmbedCacheClient : IDisposable
{
    private readonly GrpcChannel _channel;
    private readonly bool _ownsChannel;

    /// <summary>Connects to <paramref name="address"/>, e.g. <c>http://127.0.0.1:50051</c>.</summary>
    public EmbedCacheClient(Uri address)
        : this(GrpcChannel.ForAddress(address), ownsChannel: true)
    {
    }

    /// <summary>Uses an existing channel; the caller keeps ownership of it.</summary>
    public EmbedCacheClient(GrpcChannel channel)
        : this(channel, ownsChannel: false)
    {
    }

    private EmbedCacheClient(GrpcChannel channel, bool ownsChannel)
    {
        _channel = channel;
        _ownsChannel = ownsChannel;
    }

    /// <summary>The channel the client talks over.</summary>
    public GrpcChannel Channel => _channel;

    /// <summary>
    /// Asks the standard gRPC health service whether the service (or one named service) is serving.
    /// </summary>
    /// <param name="service">A gRPC service name, or empty for the server as a whole.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The reported status.</returns>
    public async Task<HealthCheckResponse.Types.ServingStatus> CheckHealthAsync(
        string service = "", CancellationToken cancellationToken = default)
    {
        var health = new Health.HealthClient(_channel);
        var reply = await health.CheckAsync(new HealthCheckRequest { Service = service },
            new CallOptions(cancellationToken: cancellationToken)).ConfigureAwait(false);
        return reply.Status;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsChannel)
            _channel.Dispose();
    }
}
