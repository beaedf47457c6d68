using System.Diagnostics;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace EmbedCache.ClusterSupport.Tests;

/// <summary>
/// What every <see cref="IClusterFixture"/> promises, run against each engine (<see cref="RedisClusterTests"/>,
/// <see cref="GarnetClusterTests"/>) through StackExchange.Redis, the client a user of the fixture has. Each test forms
/// its own cluster of 3 primaries with a replica each, and prints how long the engine took to form and to fail over.
/// </summary>
public abstract class ClusterFixtureContract(ITestOutputHelper output)
{
    private const int Primaries = 3;

    protected ITestOutputHelper Output { get; } = output;

    protected abstract string Engine { get; }

    /// <summary>Whether keys written before <see cref="IClusterFixture.StopAllAsync"/> are there after the restart.</summary>
    protected abstract bool KeysSurviveRestart { get; }

    /// <summary>Starts a cluster of 3 primaries with <paramref name="replicasPerPrimary"/> replicas each.</summary>
    protected abstract Task<IClusterFixture> StartAsync(int replicasPerPrimary = 1, string? user = null, string? password = null);

    [Fact]
    public async Task Start_FormsThreePrimariesServingEverySlot_EachWithOneAttachedReplica()
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = await StartAsync();
        Output.WriteLine($"{Engine}: {cluster.Endpoints.Count} nodes formed a cluster in {clock.Elapsed.TotalSeconds:0.0} s");

        Assert.Equal(Engine, cluster.Engine);
        Assert.Equal(6, cluster.Endpoints.Count);
        Assert.Equal(6, cluster.Endpoints.Distinct().Count());
        Assert.All(cluster.Endpoints, e => Assert.StartsWith("127.0.0.1:", e, StringComparison.Ordinal));

        await using var client = await ConnectAsync(cluster);
        var nodes = (await client.GetServer(cluster.Endpoints[0]).ClusterNodesAsync())!.Nodes;
        var primaries = nodes.Where(n => !n.IsReplica).ToList();
        var replicas = nodes.Where(n => n.IsReplica).ToList();
        Assert.Equal(Primaries, primaries.Count);
        Assert.Equal(16384, primaries.Sum(p => p.Slots.Sum(s => s.To - s.From + 1)));
        Assert.All(primaries, p => Assert.Single(replicas, r => r.ParentNodeId == p.NodeId));
        Assert.Equal(cluster.Endpoints.Order(), nodes.Select(n => n.EndPoint!.ToString()!).Order());
    }

    [Fact]
    public async Task SetAndGet_ThousandKeys_LandOnEveryPrimary_AndFlushAllRemovesThem()
    {
        await using var cluster = await StartAsync();
        await using var client = await ConnectAsync(cluster);
        var db = client.GetDatabase();
        var keys = Enumerable.Range(0, 1000).Select(i => $"key:{i}").ToArray();

        await Task.WhenAll(keys.Select(k => db.StringSetAsync(k, "value of " + k)));
        var values = await Task.WhenAll(keys.Select(k => db.StringGetAsync(k)));

        Assert.Equal(keys.Select(k => "value of " + k), values.Select(v => v.ToString()));
        var layout = (await client.GetServer(cluster.Endpoints[0]).ClusterNodesAsync())!;
        var keysPerPrimary = keys.GroupBy(k => layout.GetBySlot(k)!.EndPoint!.ToString()).ToDictionary(g => g.Key!, g => g.Count());
        Output.WriteLine($"{Engine}: keys per primary: {string.Join(", ", keysPerPrimary.Select(p => $"{p.Key} {p.Value}"))}");
        Assert.Equal(Primaries, keysPerPrimary.Count);
        Assert.All(keysPerPrimary.Values, count => Assert.InRange(count, 250, 420));

        await cluster.FlushAllAsync();
        var afterFlush = await Task.WhenAll(keys.Select(k => db.KeyExistsAsync(k)));
        Assert.DoesNotContain(true, afterFlush);
    }

    [Fact]
    public async Task KillPrimaryOf_PromotesItsReplica_WhichServesTheKeysReplicatedBeforeTheKill()
    {
        await using var cluster = await StartAsync();
        await using var client = await ConnectAsync(cluster);
        var db = client.GetDatabase();
        var keys = Enumerable.Range(0, 300).Select(i => $"before-kill:{i}").ToArray();
        await Task.WhenAll(keys.Select(k => db.StringSetAsync(k, "value of " + k)));
        await cluster.WaitForReplicationAsync();

        const string Victim = "before-kill:0";
        var layout = (await client.GetServer(cluster.Endpoints[0]).ClusterNodesAsync())!;
        var victimPrimary = layout.GetBySlot(Victim)!.EndPoint!.ToString();
        var keysOnVictim = keys.Where(k => layout.GetBySlot(k)!.EndPoint!.ToString() == victimPrimary).ToArray();
        Assert.NotEmpty(keysOnVictim);

        var clock = Stopwatch.StartNew();
        var killed = await cluster.KillPrimaryOfAsync(Victim);
        Output.WriteLine($"{Engine}: killed {killed}; its slots were served again after {clock.Elapsed.TotalSeconds:0.0} s");

        Assert.Equal(victimPrimary, killed);
        var survivor = cluster.Endpoints.First(e => e != killed);
        await using var fresh = await ConnectAsync(cluster);
        var newOwner = (await fresh.GetServer(survivor).ClusterNodesAsync())!.GetBySlot(Victim)!;
        Assert.NotEqual(killed, newOwner.EndPoint!.ToString());
        var freshDb = fresh.GetDatabase();
        var readBack = await Task.WhenAll(keysOnVictim.Select(k => freshDb.StringGetAsync(k)));
        Assert.Equal(keysOnVictim.Select(k => "value of " + k), readBack.Select(v => v.ToString()));

        await freshDb.StringSetAsync(Victim, "written after the kill");
        Assert.Equal("written after the kill", await freshDb.StringGetAsync(Victim));
    }

    [Fact]
    public async Task StopAll_LeavesNoNodeReachable_AndRestartAll_BringsTheSameClusterBack_WithTheKeysItPersists()
    {
        await using var cluster = await StartAsync();
        string[] nodeIds;
        await using (var client = await ConnectAsync(cluster))
        {
            nodeIds = (await client.GetServer(cluster.Endpoints[0]).ClusterNodesAsync())!.Nodes.Select(n => n.NodeId).Order().ToArray();
            await client.GetDatabase().StringSetAsync("before-stop", "kept?");
        }

        await cluster.StopAllAsync();
        await using (var down = await ConnectAsync(cluster, failFast: true))
        {
            Assert.False(down.IsConnected, $"a client connected to the stopped cluster: {down.GetStatus()}");
            await Assert.ThrowsAsync<RedisConnectionException>(() => down.GetDatabase().StringGetAsync("any key"));
        }

        var clock = Stopwatch.StartNew();
        await cluster.RestartAllAsync();
        Output.WriteLine($"{Engine}: restarted and consistent again in {clock.Elapsed.TotalSeconds:0.0} s");

        await using var again = await ConnectAsync(cluster);
        var idsAfter = (await again.GetServer(cluster.Endpoints[0]).ClusterNodesAsync())!.Nodes.Select(n => n.NodeId).Order().ToArray();
        Assert.Equal(nodeIds, idsAfter);
        var db = again.GetDatabase();
        Assert.Equal(KeysSurviveRestart ? "kept?" : RedisValue.Null, await db.StringGetAsync("before-stop"));
        var keys = Enumerable.Range(0, 100).Select(i => $"after-restart:{i}").ToArray();
        await Task.WhenAll(keys.Select(k => db.StringSetAsync(k, k)));
        var values = await Task.WhenAll(keys.Select(k => db.StringGetAsync(k)));
        Assert.Equal(keys, values.Select(v => v.ToString()));
    }

    [Fact]
    public async Task RestartAll_AfterKillPrimaryOf_BringsTheKilledNodeBackAsAReplica()
    {
        await using var cluster = await StartAsync();
        var killed = await cluster.KillPrimaryOfAsync("some key");

        var clock = Stopwatch.StartNew();
        await cluster.RestartAllAsync();
        Output.WriteLine($"{Engine}: restarted after a failover, consistent again in {clock.Elapsed.TotalSeconds:0.0} s");

        await using var client = await ConnectAsync(cluster);
        var nodes = (await client.GetServer(cluster.Endpoints[0]).ClusterNodesAsync())!.Nodes;
        var comeBack = Assert.Single(nodes, n => n.EndPoint!.ToString() == killed);
        Assert.True(comeBack.IsReplica, $"{killed} came back as '{comeBack.Raw}', expected a replica");
        Assert.Equal(Primaries, nodes.Count(n => !n.IsReplica));
        Assert.All(nodes.Where(n => !n.IsReplica), p => Assert.Single(nodes, r => r.ParentNodeId == p.NodeId));
        await client.GetDatabase().StringSetAsync("some key", "after the restart");
        Assert.Equal("after the restart", await client.GetDatabase().StringGetAsync("some key"));
    }

    [Fact]
    public async Task Start_WithUserAndPassword_ServesThatUser_AndRefusesAClientWithoutThem()
    {
        await using var cluster = await StartAsync(replicasPerPrimary: 0, user: "fixture-user", password: "fixture-password");
        Assert.Contains("user=fixture-user", cluster.ConfigurationString, StringComparison.Ordinal);

        await using var client = await ConnectAsync(cluster);
        await client.GetDatabase().StringSetAsync("authenticated", "yes");
        Assert.Equal("yes", await client.GetDatabase().StringGetAsync("authenticated"));

        var anonymous = ConfigurationOptions.Parse(cluster.ConfigurationString);
        anonymous.User = null;
        anonymous.Password = null;
        anonymous.ConnectTimeout = 2000;
        anonymous.BacklogPolicy = BacklogPolicy.FailFast;
        await using var refused = await ConnectionMultiplexer.ConnectAsync(anonymous);
        await Assert.ThrowsAnyAsync<RedisException>(() => refused.GetDatabase().StringGetAsync("authenticated"));
    }

    /// <summary>
    /// A client as a test would make one, with timeouts short enough that a failure shows quickly, and admin commands
    /// allowed (the tests read CLUSTER NODES). <paramref name="failFast"/>: a command fails at once while no node is
    /// connected, instead of waiting in the backlog for one (a test that expects the cluster down).
    /// </summary>
    protected static async Task<ConnectionMultiplexer> ConnectAsync(IClusterFixture cluster, bool failFast = false, int timeoutMs = 5000)
    {
        var options = ConfigurationOptions.Parse(cluster.ConfigurationString);
        options.AllowAdmin = true;
        options.ConnectTimeout = 3000;
        options.SyncTimeout = timeoutMs;
        options.AsyncTimeout = timeoutMs;
        if (failFast)
            options.BacklogPolicy = BacklogPolicy.FailFast;
        return await ConnectionMultiplexer.ConnectAsync(options);
    }
}
