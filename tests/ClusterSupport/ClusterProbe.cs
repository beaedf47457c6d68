using System.Globalization;
using System.Text;
using EmbedCache.TestSupport;
using StackExchange.Redis;

namespace EmbedCache.ClusterSupport;

/// <summary>
/// A fixture's own view of its cluster, the same for both engines: an admin connection to every node, the commands a
/// fixture sends to one node, and the condition waits (consistent — in ClusterProbe.Consistency.cs —, replicated,
/// empty, a slot served) with failure messages that show what each node said.
/// </summary>
internal sealed partial class ClusterProbe : IAsyncDisposable
{
    private const string ProbeKeyPrefix = "embedcache-cluster-probe:";

    private readonly ConnectionMultiplexer _admin;
    private readonly Func<IReadOnlyList<NodeStatus>> _nodes;
    private readonly Func<string, string?> _nodeLog;

    private ClusterProbe(ConnectionMultiplexer admin, Func<IReadOnlyList<NodeStatus>> nodes, Func<string, string?> nodeLog)
    {
        _admin = admin;
        _nodes = nodes;
        _nodeLog = nodeLog;
    }

    /// <param name="nodes">Every node of the fixture and its state, read at each check.</param>
    /// <param name="nodeLog">The last lines a node logged, for failure messages (null: nothing to add).</param>
    public static async Task<ClusterProbe> ConnectAsync(ClusterCredentials credentials, Func<IReadOnlyList<NodeStatus>> nodes, Func<string, string?> nodeLog)
    {
        var options = credentials.ClientOptions(nodes().Select(n => n.Endpoint));
        options.AllowAdmin = true;
        options.ClientName = "embedcache-cluster-fixture";
        options.ConnectTimeout = 2000;
        options.SyncTimeout = 5000;
        options.AsyncTimeout = 5000;
        // A restarted node is reconnected on the next heartbeat: keep both short, the waits poll for it.
        options.ReconnectRetryPolicy = new LinearRetry(100);
        options.HeartbeatInterval = TimeSpan.FromMilliseconds(250);
        // No pub/sub channel for configuration changes, no tie-breaker key: this connection only asks nodes about themselves.
        options.ConfigurationChannel = "";
        options.TieBreaker = "";
        var admin = await ConnectionMultiplexer.ConnectAsync(options);
        return new ClusterProbe(admin, nodes, nodeLog);
    }

    /// <summary>
    /// The key's hash slot, as a running node computes it (<c>CLUSTER KEYSLOT</c>). Not this connection's own
    /// computation: StackExchange.Redis gives none when it connected while the nodes had no slots yet, as here.
    /// </summary>
    public async Task<int> KeySlotAsync(string key) => (int)await ExecuteAsync(Running()[0], "CLUSTER", "KEYSLOT", key);

    /// <summary>Sends one command to one node.</summary>
    public async Task<RedisResult> ExecuteAsync(string endpoint, string command, params object[] args) =>
        await _admin.GetServer(endpoint).ExecuteAsync(command, args);

    public async Task<ClusterNodesView> NodesAsync(string endpoint) =>
        ClusterNodesView.Parse(RequireText(await ExecuteAsync(endpoint, "CLUSTER", "NODES"), endpoint, "CLUSTER NODES"));

    public async Task<IReadOnlyDictionary<string, string>> ClusterInfoAsync(string endpoint) =>
        ParseFields(RequireText(await ExecuteAsync(endpoint, "CLUSTER", "INFO"), endpoint, "CLUSTER INFO"));

    public async Task<IReadOnlyDictionary<string, string>> ReplicationInfoAsync(string endpoint) =>
        ParseFields(await _admin.GetServer(endpoint).InfoRawAsync("replication") ?? "");

    /// <summary>
    /// The slot's primary and its running replicas, as a running node sees them, for a fixture about to kill it.
    /// </summary>
    public async Task<(ClusterNodeEntry Primary, IReadOnlyList<ClusterNodeEntry> Replicas, ClusterNodesView View)> OwnerOfAsync(int slot)
    {
        var running = Running();
        var view = await NodesAsync(running[0]);
        var owner = view.OwnerOf(slot)
            ?? throw new InvalidOperationException($"{running[0]} sees no primary serving slot {slot}:\n{view.Text}");
        if (!running.Contains(owner.Endpoint))
            throw new InvalidOperationException($"Slot {slot} is served by {owner.Endpoint}, which is not running:\n{view.Text}");
        var replicas = view.ReplicasOf(owner.Id).Where(r => running.Contains(r.Endpoint)).ToList();
        return (owner, replicas, view);
    }

    /// <summary>
    /// Waits until a client that connects now (a fresh multiplexer, the fixture's configuration string) can write and
    /// read back a key in <paramref name="slot"/>. The key is the fixture's own, deleted afterwards.
    /// </summary>
    public async Task WaitUntilSlotServedAsync(string configuration, int slot, TimeSpan timeout)
    {
        var token = Guid.NewGuid().ToString("N");
        var options = ConfigurationOptions.Parse(configuration);
        options.ConnectTimeout = 2000;
        options.SyncTimeout = 2000;
        options.AsyncTimeout = 2000;
        await using var client = await ConnectionMultiplexer.ConnectAsync(options);
        var key = ProbeKey(client, slot);
        var db = client.GetDatabase();
        string lastSeen = "nothing yet";
        try
        {
            await Wait.UntilAsync(async () =>
            {
                try
                {
                    await db.StringSetAsync(key, token);
                    var read = await db.StringGetAsync(key);
                    lastSeen = $"GET {key} returned '{read}'";
                    return read == token;
                }
                catch (Exception e) when (e is RedisException or RedisTimeoutException)
                {
                    lastSeen = $"{e.GetType().Name}: {e.Message}";
                    return false;
                }
            }, $"a fresh client to write and read key '{key}' (slot {slot})", timeout);
        }
        catch (TimeoutException timedOut)
        {
            throw new TimeoutException($"{timedOut.Message}\nExpected: SET then GET returns '{token}'.\nLast seen: {lastSeen}\n{await DescribeNodesAsync()}", timedOut);
        }

        await db.KeyDeleteAsync(key);
    }

    /// <summary>
    /// Waits until every running replica's replication offset has reached its primary's as read at the start: each
    /// write a primary acknowledged before this call is then on its replicas. Offsets are compared number by number
    /// (a Garnet offset with several AOF sublogs is a comma-separated list).
    /// </summary>
    public async Task WaitForReplicationAsync(TimeSpan timeout)
    {
        var running = Running();
        var targets = new List<(string Replica, string Primary, long[] Offset)>();
        foreach (var endpoint in running)
        {
            var view = await NodesAsync(endpoint);
            if (!view.Myself!.IsPrimary)
                continue;
            var offset = ParseOffset(endpoint, await ReplicationInfoAsync(endpoint));
            foreach (var replica in view.ReplicasOf(view.Myself.Id).Where(r => running.Contains(r.Endpoint)))
                targets.Add((replica.Endpoint, endpoint, offset));
        }

        foreach (var (replica, primary, offset) in targets)
        {
            long[] seen = [];
            try
            {
                await Wait.UntilAsync(async () =>
                {
                    seen = ParseOffset(replica, await ReplicationInfoAsync(replica));
                    return seen.Length == offset.Length && seen.Zip(offset).All(p => p.First >= p.Second);
                }, $"replica {replica} to reach its primary {primary}'s replication offset", timeout);
            }
            catch (TimeoutException timedOut)
            {
                throw new TimeoutException(
                    $"{timedOut.Message} Expected master_repl_offset >= {string.Join(',', offset)}, last seen {string.Join(',', seen)}.\n{await DescribeNodesAsync()}",
                    timedOut);
            }
        }
    }

    /// <summary><c>FLUSHALL</c> on every running primary; then waits until every running node, replicas too, is empty.</summary>
    public async Task FlushAllAsync(TimeSpan timeout)
    {
        var running = Running();
        foreach (var endpoint in running)
        {
            if ((await NodesAsync(endpoint)).Myself!.IsPrimary)
                await ExecuteAsync(endpoint, "FLUSHALL");
        }

        foreach (var endpoint in running)
        {
            long keys = -1;
            try
            {
                await Wait.UntilAsync(async () =>
                {
                    keys = (long)await ExecuteAsync(endpoint, "DBSIZE");
                    return keys == 0;
                }, $"{endpoint} to hold no key after FLUSHALL", timeout);
            }
            catch (TimeoutException timedOut)
            {
                throw new TimeoutException($"{timedOut.Message} Expected DBSIZE 0, last seen {keys}.", timedOut);
            }
        }
    }

    /// <summary>Each node's state, its <c>CLUSTER NODES</c> if it runs, and its last log lines: what a failure message shows.</summary>
    public async Task<string> DescribeNodesAsync()
    {
        var text = new StringBuilder();
        foreach (var node in _nodes())
        {
            text.Append("--- ").Append(node.Endpoint).Append(" (").Append(node.State.ToString().ToLowerInvariant()).Append(")\n");
            if (node.IsRunning)
            {
                try
                {
                    text.Append(RequireText(await ExecuteAsync(node.Endpoint, "CLUSTER", "NODES"), node.Endpoint, "CLUSTER NODES").TrimEnd()).Append('\n');
                }
                catch (Exception e) when (e is RedisException or RedisTimeoutException or InvalidOperationException)
                {
                    text.Append("CLUSTER NODES failed: ").Append(e.Message).Append('\n');
                }
            }

            if (_nodeLog(node.Endpoint) is { Length: > 0 } log)
                text.Append("last log lines:\n").Append(log.TrimEnd()).Append('\n');
        }

        return text.ToString();
    }

    private List<string> Running() => _nodes().Where(n => n.IsRunning).Select(n => n.Endpoint).ToList();

    /// <summary>A key of the fixture's own in <paramref name="slot"/> (no hash tag, so it cannot clash with a test's tagged keys).</summary>
    private static string ProbeKey(ConnectionMultiplexer client, int slot)
    {
        if (client.HashSlot(ProbeKeyPrefix) < 0)
            throw new InvalidOperationException($"A client that connected to the consistent cluster does not see a cluster (StackExchange.Redis gives no hash slot): {client.GetStatus()}");
        for (var n = 0; ; n++)
        {
            var key = ProbeKeyPrefix + n.ToString(CultureInfo.InvariantCulture);
            if (client.HashSlot(key) == slot)
                return key;
        }
    }

    private static long[] ParseOffset(string endpoint, IReadOnlyDictionary<string, string> replication)
    {
        var text = replication.GetValueOrDefault("master_repl_offset")
            ?? throw new InvalidOperationException($"{endpoint}'s INFO replication has no master_repl_offset: {string.Join(", ", replication.Select(p => $"{p.Key}:{p.Value}"))}");
        return text.Split(',').Select(part => long.Parse(part, CultureInfo.InvariantCulture)).ToArray();
    }

    private static string RequireText(RedisResult result, string endpoint, string command) =>
        result.IsNull ? throw new InvalidOperationException($"{endpoint} answered {command} with nil") : result.ToString();

    /// <summary>"key:value" lines (INFO, CLUSTER INFO), section headers and blank lines skipped.</summary>
    private static Dictionary<string, string> ParseFields(string text)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && !line.StartsWith('#'))
                fields[line[..colon]] = line[(colon + 1)..];
        }

        return fields;
    }

    public async ValueTask DisposeAsync() => await _admin.DisposeAsync();
}
