using System.Globalization;
using StackExchange.Redis;

namespace EmbedCache.Engine.Remote;

/// <summary>A cluster prewarm job as the cluster holds it.</summary>
/// <param name="Fields">The job hash: <c>spec</c>, <c>shards</c> (JSON), <c>state</c>, <c>message</c>, and per shard
/// <c>p:k</c> / <c>e:k</c> / <c>s:k</c> (processed, encoded, skipped by its latest run) and <c>n:k</c> (the node that
/// finished it).</param>
/// <param name="Done">Shards finished (their rows and labels on the cluster).</param>
/// <param name="Leases">Shards leased now, and the node holding each.</param>
public sealed record ClusterJobRecord(string Id, IReadOnlyDictionary<string, string> Fields, IReadOnlySet<int> Done, IReadOnlyDictionary<int, string> Leases)
{
    public string State => Fields.GetValueOrDefault("state", "");

    public long Field(string name) => Fields.TryGetValue(name, out var v) && long.TryParse(v, CultureInfo.InvariantCulture, out var n) ? n : 0;
}

/// <summary>
/// Cluster prewarm jobs on the cluster: the job hash, the set of finished shards, and one lease per shard taken with
/// <c>SET NX PX</c> and renewed or released only by its holder (StackExchange.Redis's lock calls: a transaction
/// conditioned on the lease's value). Every key of a
/// job shares its hash slot (<see cref="RemoteKeys.Job"/>), so a job's keys live on one primary and its replicas. Calls
/// throw on cluster faults; the caller (the node's shard worker) retries on its next round.
/// </summary>
public sealed class ClusterJobStore(RemoteCluster remote)
{
    private IDatabase Db => remote.Database;

    private TimeSpan Timeout => TimeSpan.FromMilliseconds(Math.Max(remote.Options.OperationTimeoutMs * 4, 2000));

    private RemoteKeys Keys => remote.Keys;

    /// <summary>Creates the job (idempotent: an existing one is left as it is) and lists it.</summary>
    public async Task CreateAsync(string id, IReadOnlyDictionary<string, string> fields)
    {
        var key = Keys.Job(id);
        var transaction = Db.CreateTransaction();
        transaction.AddCondition(Condition.KeyNotExists(key));
        _ = transaction.HashSetAsync(key, fields.Select(f => new HashEntry(f.Key, f.Value)).ToArray());
        await transaction.ExecuteAsync().WaitAsync(Timeout).ConfigureAwait(false);
        await Db.SetAddAsync(Keys.JobIndex, id).WaitAsync(Timeout).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<string>> JobIdsAsync() =>
        (await Db.SetMembersAsync(Keys.JobIndex).WaitAsync(Timeout).ConfigureAwait(false)).Select(v => (string)v!).ToList();

    /// <summary>The job, or null when the cluster has no such job.</summary>
    public async Task<ClusterJobRecord?> GetAsync(string id, int shards = -1)
    {
        var fields = await Db.HashGetAllAsync(Keys.Job(id)).WaitAsync(Timeout).ConfigureAwait(false);
        if (fields.Length == 0)
            return null;
        var map = fields.ToDictionary(e => (string)e.Name!, e => (string)e.Value!, StringComparer.Ordinal);
        var done = (await Db.SetMembersAsync(Keys.Job(id, ":done")).WaitAsync(Timeout).ConfigureAwait(false))
            .Select(v => (int)v).ToHashSet();
        var leases = new Dictionary<int, string>();
        if (shards < 0 && map.TryGetValue("shardCount", out var count))
            shards = int.Parse(count, CultureInfo.InvariantCulture);
        var open = Enumerable.Range(0, Math.Max(0, shards)).Where(k => !done.Contains(k)).ToArray();
        if (open.Length > 0)
        {
            var owners = await Db.StringGetAsync(open.Select(k => (RedisKey)LeaseKey(id, k)).ToArray()).WaitAsync(Timeout).ConfigureAwait(false);
            for (var j = 0; j < open.Length; j++)
            {
                if (!owners[j].IsNull)
                    leases[open[j]] = owners[j]!;
            }
        }

        return new ClusterJobRecord(id, map, done, leases);
    }

    /// <summary>Takes shard <paramref name="shard"/>'s lease for <paramref name="owner"/> (SET NX PX); false when another node holds it.</summary>
    public async Task<bool> TryLeaseAsync(string id, int shard, string owner, TimeSpan ttl) =>
        await Db.LockTakeAsync(LeaseKey(id, shard), owner, ttl).WaitAsync(Timeout).ConfigureAwait(false);

    /// <summary>Extends the lease if <paramref name="owner"/> still holds it; false when it lapsed and is gone or another node's.</summary>
    public async Task<bool> RenewAsync(string id, int shard, string owner, TimeSpan ttl) =>
        await Db.LockExtendAsync(LeaseKey(id, shard), owner, ttl).WaitAsync(Timeout).ConfigureAwait(false);

    /// <summary>Gives the lease back if <paramref name="owner"/> holds it.</summary>
    public async Task ReleaseAsync(string id, int shard, string owner) =>
        await Db.LockReleaseAsync(LeaseKey(id, shard), owner).WaitAsync(Timeout).ConfigureAwait(false);

    /// <summary>Publishes a running shard's counters (absolute: a later run of the shard replaces them).</summary>
    public Task ReportAsync(string id, int shard, long processed, long encoded, long skipped) =>
        Db.HashSetAsync(Keys.Job(id), [
            new HashEntry($"p:{shard}", processed),
            new HashEntry($"e:{shard}", encoded),
            new HashEntry($"s:{shard}", skipped),
        ]).WaitAsync(Timeout);

    /// <summary>
    /// Records shard <paramref name="shard"/> as finished by <paramref name="node"/> with its final counters; returns
    /// how many shards are finished now, or -1 when another node had finished it already.
    /// </summary>
    public async Task<long> MarkDoneAsync(string id, int shard, string node, long processed, long encoded, long skipped)
    {
        if (!await Db.SetAddAsync(Keys.Job(id, ":done"), shard).WaitAsync(Timeout).ConfigureAwait(false))
            return -1;
        await Db.HashSetAsync(Keys.Job(id), [
            new HashEntry($"p:{shard}", processed),
            new HashEntry($"e:{shard}", encoded),
            new HashEntry($"s:{shard}", skipped),
            new HashEntry($"n:{shard}", node),
        ]).WaitAsync(Timeout).ConfigureAwait(false);
        return await Db.SetLengthAsync(Keys.Job(id, ":done")).WaitAsync(Timeout).ConfigureAwait(false);
    }

    /// <summary>Sets the job's state (running, completed, failed, cancelled) and message.</summary>
    public Task SetStateAsync(string id, string state, string message) =>
        Db.HashSetAsync(Keys.Job(id), [new HashEntry("state", state), new HashEntry("message", message)]).WaitAsync(Timeout);

    private string LeaseKey(string id, int shard) => Keys.Job(id, $":lease:{shard.ToString(CultureInfo.InvariantCulture)}");
}
