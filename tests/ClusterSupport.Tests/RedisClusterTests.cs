using System.Diagnostics;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace EmbedCache.ClusterSupport.Tests;

/// <summary>
/// <see cref="RedisCluster"/>: Debian's redis-server. Not installed, every test fails naming .ci/apt-packages (CI
/// installs it from there).
/// </summary>
public sealed class RedisClusterTests(ITestOutputHelper output) : ClusterFixtureContract(output)
{
    protected override string Engine => "redis";

    /// <summary>Nothing but nodes-P.conf is persisted (--save "", no AOF).</summary>
    protected override bool KeysSurviveRestart => false;

    protected override async Task<IClusterFixture> StartAsync(int replicasPerPrimary = 1, string? user = null, string? password = null) =>
        await RedisCluster.StartAsync(primaries: 3, replicasPerPrimary, nodeTimeoutMs: 2000, user, password);

    [Fact]
    public async Task PauseNode_StopsItAnswering_AndResumeNode_LetsTheClusterServeAgain()
    {
        await using var cluster = await StartAsync();
        await using var client = await ConnectAsync(cluster, timeoutMs: 1000);
        var layout = (await client.GetServer(cluster.Endpoints[0]).ClusterNodesAsync())!;
        var replica = layout.Nodes.First(n => n.IsReplica).EndPoint!.ToString()!;

        await cluster.PauseNodeAsync(replica);
        var clock = Stopwatch.StartNew();
        var ping = await Assert.ThrowsAnyAsync<Exception>(() => client.GetServer(replica).PingAsync());
        Assert.True(ping is RedisTimeoutException or RedisConnectionException, $"expected a timeout from the paused node, got {ping}");
        Output.WriteLine($"redis: the paused node's PING failed after {clock.Elapsed.TotalSeconds:0.0} s: {ping.GetType().Name}");

        await cluster.ResumeNodeAsync(replica);
        Assert.True((await client.GetServer(replica).PingAsync()) >= TimeSpan.Zero);
        await client.GetDatabase().StringSetAsync("after-resume", "yes");
        Assert.Equal("yes", await client.GetDatabase().StringGetAsync("after-resume"));
    }
}
