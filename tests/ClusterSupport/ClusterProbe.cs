using System.Globalization;
using System.Text;
using EmbedCache.TestSupport;
using StackExchange.Redis;

namespace EmbedCache.ClusterSupport;

/// <summary>
/// A fixture's own view of its cluster, the same for both engines: an admin connection to every node, the commands a
/// fixture sends to one node, and the condition waits (consistent, replicated, empty, a slot served) with failure
/// messages that show what each node said.
/// </summary>
internal sealed class ClusterProbe : IAsyncDisposable
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

    /// <summary>The key's hash slot, as StackExchange.Redis computes it for a cluster.</summary>
    public int HashSlot(string key)
    {
        var slot = _admin.HashSlot(key);
        return slot >= 0 ? slot : throw new InvalidOperationException(
            "The fixture's admin connection does not see a cluster (StackExchange.Redis gives no hash slot): it was opened before the cluster formed and not reopened since.");
    }

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
    /// Waits until every running node reports <c>cluster_state:ok</c> and all 16384 slots assigned, sees every other
    /// running node without a failure flag, and agrees with the others that <paramref name="primaries"/> running
    /// primaries own all slots and that every other running node replicates one of them; and until every running
    /// replica reports <c>role:slave</c> and <c>master_link_status:up</c>. Returns one node's view of that cluster.
    /// </summary>
    public async Task<ClusterNodesView> WaitUntilConsistentAsync(int primaries, string what, TimeSpan timeout)
    {
        string lastSeen = "nothing yet";
        ClusterNodesView? consistent = null;
        try
        {
            await Wait.UntilAsync(async () =>
            {
                var (problem, view) = await FindInconsistencyAsync(primaries);
                lastSeen = problem ?? "consistent";
                consistent = view;
                return problem is null;
            }, what, timeout);
        }
        catch (TimeoutException timedOut)
        {
            throw new TimeoutException(
                $"{timedOut.Message}\nExpected: every running node ({string.Join(", ", Running())}) reports cluster_state:ok with 16384 " +
                $"slots assigned, all agree that {primaries} running primaries own every slot and that each other running node " +
                $"replicates one of them, and each replica reports role:slave and master_link_status:up.\nLast seen: {lastSeen}\n{await DescribeNodesAsync()}",
                timedOut);
        }

        return consistent!;
    }

    /// <summary>
    /// Waits until every running node (of <paramref name="among"/>, if given) lists every other one, past the handshake
    /// (a cluster being formed by hand: CLUSTER REPLICATE needs the replica to know its primary). Returns the node ids
    /// by endpoint.
    /// </summary>
    public async Task<IReadOnlyDictionary<string, string>> WaitUntilAllKnowEachOtherAsync(string what, TimeSpan timeout, IReadOnlyCollection<string>? among = null)
    {
        var lastSeen = "nothing yet";
        var ids = new Dictionary<string, string>();
        List<string> running = [];
        try
        {
            await Wait.UntilAsync(async () =>
            {
                running = Running().Where(e => among is null || among.Contains(e)).ToList();
                foreach (var endpoint in running)
                {
                    try
                    {
                        var view = await NodesAsync(endpoint);
                        foreach (var other in running)
                        {
                            if (view.ByEndpoint(other) is not { IsSuspect: false } entry)
                            {
                                lastSeen = $"{endpoint} does not know {other} yet";
                                return false;
                            }

                            ids[other] = entry.Id;
                        }
                    }
                    catch (Exception e) when (e is RedisException or RedisTimeoutException or FormatException)
                    {
                        lastSeen = $"{endpoint} did not answer CLUSTER NODES: {e.GetType().Name}: {e.Message}";
                        return false;
                    }
                }

                return true;
            }, what, timeout);
        }
        catch (TimeoutException timedOut)
        {
            throw new TimeoutException(
                $"{timedOut.Message}\nExpected: each of {string.Join(", ", running)} lists all of them.\nLast seen: {lastSeen}\n{await DescribeNodesAsync()}",
                timedOut);
        }

        return ids;
    }

    /// <summary>The first thing that keeps the cluster from being consistent (null if nothing does), and a node's view.</summary>
    private async Task<(string? Problem, ClusterNodesView? View)> FindInconsistencyAsync(int primaries)
    {
        var running = Running();
        var views = new List<(string Endpoint, ClusterNodesView View)>();
        foreach (var endpoint in running)
        {
            try
            {
                var info = await ClusterInfoAsync(endpoint);
                if (info.GetValueOrDefault("cluster_state") != "ok")
                    return ($"{endpoint} reports cluster_state:{info.GetValueOrDefault("cluster_state", "(none)")}", null);
                if (info.GetValueOrDefault("cluster_slots_assigned") != ClusterNodesView.SlotCount.ToString(CultureInfo.InvariantCulture))
                    return ($"{endpoint} reports cluster_slots_assigned:{info.GetValueOrDefault("cluster_slots_assigned", "(none)")}", null);

                var view = await NodesAsync(endpoint);
                if (view.Myself?.Endpoint != endpoint)
                    return ($"{endpoint} calls itself {view.Myself?.Endpoint ?? "nothing"} in CLUSTER NODES", null);
                foreach (var other in running)
                {
                    var entry = view.ByEndpoint(other);
                    if (entry is null)
                        return ($"{endpoint} does not know {other} yet", null);
                    if (entry.IsSuspect)
                        return ($"{endpoint} flags {other} '{string.Join(',', entry.Flags)}'", null);
                }

                views.Add((endpoint, view));
            }
            catch (Exception e) when (e is RedisException or RedisTimeoutException or FormatException)
            {
                return ($"{endpoint} did not answer CLUSTER INFO/NODES: {e.GetType().Name}: {e.Message}", null);
            }
        }

        string? agreed = null;
        foreach (var (endpoint, view) in views)
        {
            var (problem, layout) = Layout(endpoint, view, running, primaries);
            if (problem is not null)
                return (problem, null);
            if (agreed is null)
                agreed = layout;
            else if (layout != agreed)
                return ($"the nodes disagree: {views[0].Endpoint} sees {agreed}; {endpoint} sees {layout}", null);
        }

        foreach (var (endpoint, view) in views)
        {
            if (!view.Myself!.IsReplica)
                continue;
            try
            {
                var replication = await ReplicationInfoAsync(endpoint);
                var role = replication.GetValueOrDefault("role", "(none)");
                if (role != "slave")
                    return ($"{endpoint}, a replica in CLUSTER NODES, reports role:{role} in INFO replication", null);
                var link = replication.GetValueOrDefault("master_link_status", "(none)");
                if (link != "up")
                    return ($"replica {endpoint} reports master_link_status:{link}", null);
            }
            catch (Exception e) when (e is RedisException or RedisTimeoutException)
            {
                return ($"{endpoint} did not answer INFO replication: {e.GetType().Name}: {e.Message}", null);
            }
        }

        return (null, views.Count > 0 ? views[0].View : null);
    }

    /// <summary>
    /// Who serves which slots and who replicates whom among the running nodes, as <paramref name="view"/> has it, as a
    /// string to compare with the other nodes' ("0-5460 127.0.0.1:a, … | 127.0.0.1:d→127.0.0.1:a, …"); or what is wrong.
    /// </summary>
    private static (string? Problem, string Layout) Layout(string endpoint, ClusterNodesView view, IReadOnlyCollection<string> running, int primaries)
    {
        var owners = new string?[ClusterNodesView.SlotCount];
        var serving = new List<string>();
        foreach (var entry in view.Entries.Where(e => e.IsPrimary && e.Slots.Count > 0))
        {
            if (!running.Contains(entry.Endpoint))
                return ($"{endpoint} sees slots {string.Join(' ', entry.Slots)} served by {entry.Endpoint}, which is not running", "");
            foreach (var range in entry.Slots)
            {
                for (var slot = range.Start; slot <= range.End; slot++)
                {
                    if (owners[slot] is { } claimed)
                        return ($"{endpoint} sees slot {slot} claimed by both {claimed} and {entry.Endpoint}", "");
                    owners[slot] = entry.Endpoint;
                }
            }

            serving.Add(entry.Endpoint);
        }

        var unassigned = Array.IndexOf(owners, null);
        if (unassigned >= 0)
            return ($"{endpoint} sees slot {unassigned} served by no primary", "");
        if (serving.Count != primaries)
            return ($"{endpoint} sees {serving.Count} primaries serving slots ({string.Join(", ", serving)}), expected {primaries}", "");

        var replicas = new List<string>();
        foreach (var node in running.Where(n => !serving.Contains(n)))
        {
            var entry = view.ByEndpoint(node)!;
            var primary = entry.PrimaryId is null ? null : view.ById(entry.PrimaryId);
            if (!entry.IsReplica || primary is null || !serving.Contains(primary.Endpoint))
                return ($"{endpoint} sees {node} as '{string.Join(',', entry.Flags)}' of '{primary?.Endpoint ?? entry.PrimaryId ?? "-"}': neither a primary serving slots nor a replica of one", "");
            replicas.Add($"{node}→{primary.Endpoint}");
        }

        var ranges = new StringBuilder();
        for (var start = 0; start < owners.Length;)
        {
            var end = start;
            while (end + 1 < owners.Length && owners[end + 1] == owners[start])
                end++;
            ranges.Append(ranges.Length == 0 ? "" : ", ").Append(new SlotRange(start, end)).Append(' ').Append(owners[start]);
            start = end + 1;
        }

        replicas.Sort(StringComparer.Ordinal);
        return (null, $"{ranges} | {string.Join(", ", replicas)}");
    }

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
        var key = ProbeKey(slot);
        var token = Guid.NewGuid().ToString("N");
        var options = ConfigurationOptions.Parse(configuration);
        options.ConnectTimeout = 2000;
        options.SyncTimeout = 2000;
        options.AsyncTimeout = 2000;
        await using var client = await ConnectionMultiplexer.ConnectAsync(options);
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
    private string ProbeKey(int slot)
    {
        for (var n = 0; ; n++)
        {
            var key = ProbeKeyPrefix + n.ToString(CultureInfo.InvariantCulture);
            if (HashSlot(key) == slot)
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
