using EmbedCache.ClusterSupport;
using EmbedCache.Engine.Remote;
using EmbedCache.Engine.Storage;
using StackExchange.Redis;

namespace EmbedCache.Engine.Tests.Remote;

internal static class RemoteTestKit
{
    /// <summary>Remote options for <paramref name="cluster"/> under a key prefix of this test's own.</summary>
    public static RemoteOptions RemoteFor(IClusterFixture cluster, string prefix) => new()
    {
        Endpoints = [.. cluster.Endpoints],
        KeyPrefix = prefix,
        OperationTimeoutMs = 2000,
    };

    public static string NewPrefix() => "t" + Guid.NewGuid().ToString("N")[..10];

    public static StoreOptions WithRemote(StoreOptions options, RemoteOptions remote)
    {
        options.Remote = remote;
        return options;
    }

    /// <summary>Every key of the cluster's primaries whose name starts with <paramref name="pattern"/> (a SCAN glob).</summary>
    public static async Task<List<RedisKey>> KeysAsync(IConnectionMultiplexer redis, string pattern)
    {
        var keys = new List<RedisKey>();
        foreach (var endpoint in redis.GetEndPoints())
        {
            var server = redis.GetServer(endpoint);
            if (!server.IsConnected || server.IsReplica)
                continue;
            await foreach (var key in server.KeysAsync(pattern: pattern, pageSize: 1000))
                keys.Add(key);
        }

        return keys;
    }
}
