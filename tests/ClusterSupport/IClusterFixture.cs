namespace EmbedCache.ClusterSupport;

/// <summary>
/// A real Redis-protocol cluster on loopback, owned by one test or bench run: <see cref="RedisCluster"/> (redis-server
/// child processes) or <see cref="GarnetCluster"/> (Microsoft Garnet in this process). Each fixture picks its own free
/// ports and its own temp directory, and <see cref="IAsyncDisposable.DisposeAsync"/> stops every node and deletes it.
/// </summary>
/// <example>
/// <code>
/// await using var cluster = await RedisCluster.StartAsync(primaries: 3, replicasPerPrimary: 1);
/// using var redis = await ConnectionMultiplexer.ConnectAsync(cluster.ConfigurationString);
/// await redis.GetDatabase().StringSetAsync("k", "v");
/// await cluster.WaitForReplicationAsync();           // replicas hold "k" now
/// var killed = await cluster.KillPrimaryOfAsync("k"); // a replica serves "k"'s slot when this returns
/// </code>
/// </example>
/// <remarks>
/// Every method that changes the cluster returns only once the cluster is consistent again, seen from every running
/// node: all 16384 slots assigned to running primaries, every node agreeing on who owns them, every running replica
/// attached to its primary (<c>master_link_status:up</c>). A wait that runs out throws a <see cref="TimeoutException"/>
/// naming what was expected, the last thing seen and each node's <c>CLUSTER NODES</c>. The methods are not meant to be
/// called concurrently with each other.
/// </remarks>
public interface IClusterFixture : IAsyncDisposable
{
    /// <summary>"redis" or "garnet".</summary>
    string Engine { get; }

    /// <summary>"127.0.0.1:port" of every node, primaries and replicas, in the order they were started.</summary>
    IReadOnlyList<string> Endpoints { get; }

    /// <summary>
    /// For <c>ConnectionMultiplexer.Connect</c>: every endpoint, the user and password if the cluster has them, and
    /// <c>abortConnect=false</c> (a test may connect while a node is down).
    /// </summary>
    string ConfigurationString { get; }

    /// <summary>
    /// Kills the primary that owns <paramref name="key"/>'s hash slot and returns its endpoint once one of its replicas
    /// has been promoted: the running nodes agree on the new owner, and a write and a read of a key in that slot
    /// through a fresh multiplexer succeed. The killed node stays down until <see cref="RestartAllAsync"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">That primary has no running replica to promote.</exception>
    Task<string> KillPrimaryOfAsync(string key);

    /// <summary>Makes a running node unresponsive (it keeps its sockets but answers nothing) until <see cref="ResumeNodeAsync"/>.</summary>
    /// <exception cref="NotSupportedException">The engine cannot freeze one node (<see cref="GarnetCluster"/>).</exception>
    Task PauseNodeAsync(string endpoint);

    /// <summary>Lets a paused node run again and returns once the cluster is consistent.</summary>
    Task ResumeNodeAsync(string endpoint);

    /// <summary>Stops every node: the whole cluster is unreachable until <see cref="RestartAllAsync"/>.</summary>
    Task StopAllAsync();

    /// <summary>
    /// Starts every node again (stopping those still running first, killed ones included) on the same ports from the
    /// same directories, so the same cluster comes back; returns once it is consistent.
    /// </summary>
    Task RestartAllAsync();

    /// <summary>
    /// Returns once every running replica has processed its primary's replication stream up to where the primary
    /// was when this was called: what Redis's <c>WAIT</c> gives, for both engines (Garnet has no <c>WAIT</c>).
    /// </summary>
    Task WaitForReplicationAsync();

    /// <summary>Deletes every key (<c>FLUSHALL</c> on each primary) and returns once every running node is empty.</summary>
    Task FlushAllAsync();
}
