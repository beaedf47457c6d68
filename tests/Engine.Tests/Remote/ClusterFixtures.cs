using EmbedCache.ClusterSupport;

namespace EmbedCache.Engine.Tests.Remote;

/// <summary>
/// One cluster of each engine for a test class, started on first use (3 primaries, no replicas: these tests share it
/// and never kill a node). Tests keep apart by key prefix (<see cref="RemoteTestKit.RemoteFor"/>), never by flushing.
/// </summary>
public sealed class SharedClusters : IAsyncDisposable
{
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly Dictionary<string, IClusterFixture> _clusters = new(StringComparer.Ordinal);

    public async Task<IClusterFixture> GetAsync(string engine)
    {
        await _lock.WaitAsync();
        try
        {
            if (!_clusters.TryGetValue(engine, out var cluster))
            {
                cluster = engine switch
                {
                    "redis" => await RedisCluster.StartAsync(primaries: 3, replicasPerPrimary: 0),
                    "garnet" => await GarnetCluster.StartAsync(primaries: 3, replicasPerPrimary: 0),
                    _ => throw new ArgumentException($"unknown engine {engine}", nameof(engine)),
                };
                _clusters[engine] = cluster;
            }

            return cluster;
        }
        finally
        {
            _lock.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var cluster in _clusters.Values)
            await cluster.DisposeAsync();
        _lock.Dispose();
    }
}
