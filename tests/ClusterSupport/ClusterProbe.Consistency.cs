using System.Globalization;
using System.Text;
using EmbedCache.TestSupport;
using StackExchange.Redis;

namespace EmbedCache.ClusterSupport;

/// <summary>When a cluster counts as consistent, the same for both engines, and the waits for it.</summary>
internal sealed partial class ClusterProbe
{
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
}
