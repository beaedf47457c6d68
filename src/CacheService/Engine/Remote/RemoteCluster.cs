using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace EmbedCache.Engine.Remote;

/// <summary>What the remote tier has done since start, and its state now (for metrics and <c>/api/status</c>).</summary>
public sealed record RemoteStats(
    IReadOnlyList<string> Endpoints, bool Connected, BreakerState Breaker, long BreakerOpened,
    long ReadBatches, long Hits, long Misses, long Corrupt, long Errors, long Timeouts,
    long WritesQueued, long QueueBytes, long Written, long Dropped, string? LastError, DateTimeOffset? LastErrorAt);

/// <summary>
/// The connection to a Redis-protocol cluster (Garnet or Redis Cluster, through StackExchange.Redis, which follows
/// the cluster's slot map, MOVED/ASK redirects and failovers) and what the layers above do with it, all as bytes:
/// batched reads grouped by hash slot and pipelined, write-behind through a bounded queue, small named hashes. Every
/// call is bounded by the operation timeout and goes through one <see cref="CircuitBreaker"/>: while it is open the
/// cluster is skipped (reads miss at once, writes wait in the queue). Thread-safe; one per service.
/// </summary>
public sealed partial class RemoteCluster : IDisposable
{
    private const int MaxWriteEntries = 4096;
    private readonly ConnectionMultiplexer _mux;
    private readonly IDatabase _db;
    private readonly ILogger _logger;
    private readonly Channel<WriteBatch> _queue = Channel.CreateUnbounded<WriteBatch>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _writer;
    private readonly TimeSpan _timeout;
    private TaskCompletionSource _written = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _queueBytes;
    private long _enqueued;
    private long _writtenCount;
    private long _dropped;
    private long _readBatches;
    private long _hits;
    private long _misses;
    private long _corrupt;
    private long _errors;
    private long _timeouts;
    private string? _lastError;
    private long _lastErrorAt;
    private int _disposed;

    private RemoteCluster(RemoteOptions options, ConnectionMultiplexer mux, ILogger logger)
    {
        Options = options;
        Keys = new RemoteKeys(options.KeyPrefix);
        NodeName = options.NodeName ?? $"{Environment.MachineName}:{Environment.ProcessId}";
        Breaker = new CircuitBreaker(options.BreakerFailures, TimeSpan.FromMilliseconds(options.BreakerOpenMs));
        _timeout = TimeSpan.FromMilliseconds(options.OperationTimeoutMs);
        _mux = mux;
        _db = mux.GetDatabase();
        _logger = logger;
        _writer = Task.Run(WriteLoopAsync);
    }

    public RemoteOptions Options { get; }

    public RemoteKeys Keys { get; }

    /// <summary>This node's name in leases and job progress.</summary>
    public string NodeName { get; }

    internal CircuitBreaker Breaker { get; }

    /// <summary>The cluster's own client, for the lease and job records (<see cref="ClusterJobs"/>).</summary>
    internal IDatabase Database => _db;

    /// <summary>
    /// Connects to the cluster. An unreachable cluster is not an error: the service starts, the remote tier is
    /// skipped, and the client keeps reconnecting in the background.
    /// </summary>
    public static RemoteCluster Connect(RemoteOptions options, ILogger logger)
    {
        var config = new ConfigurationOptions
        {
            AbortOnConnectFail = false,
            ConnectTimeout = options.ConnectTimeoutMs,
            // Lookups wait at most OperationTimeoutMs for the cluster (Await below); the client's own timeout is
            // longer, for writes and job records that may wait out a busy moment.
            SyncTimeout = Math.Max(options.OperationTimeoutMs * 4, 2000),
            AsyncTimeout = Math.Max(options.OperationTimeoutMs * 4, 2000),
            ConnectRetry = 1,
            KeepAlive = 5,
            ConfigCheckSeconds = 5,
            User = options.User,
            Password = options.Password,
            Ssl = options.Tls,
            SslHost = options.TlsHost,
            ClientName = "embedcache",
        };
        foreach (var endpoint in options.EndpointList)
        {
            if (!RemoteOptions.TryParseEndpoint(endpoint, out var host, out var port))
                throw new ArgumentException($"Remote:Endpoints: '{endpoint}' is not host:port", nameof(options));
            config.EndPoints.Add(host, port);
        }

        if (options.Tls && options.TlsCaFile is { } caFile)
        {
            var ca = X509Certificate2.CreateFromPemFile(caFile);
            config.CertificateValidation += (_, certificate, _, errors) => ValidateAgainst(ca, certificate, errors);
        }

        var mux = ConnectionMultiplexer.Connect(config);
        var endpoints = string.Join(", ", options.EndpointList);
        if (!mux.IsConnected)
            RemoteLog.NotConnected(logger, endpoints);
        else
            RemoteLog.Connected(logger, endpoints);
        return new RemoteCluster(options, mux, logger);
    }

    private static bool ValidateAgainst(X509Certificate2 ca, X509Certificate? certificate, SslPolicyErrors errors)
    {
        if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None)
            return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(new X509Certificate2(certificate));
    }

    public RemoteStats Stats() => new(
        Options.EndpointList, _mux.IsConnected, Breaker.State, Breaker.Opened,
        Interlocked.Read(ref _readBatches), Interlocked.Read(ref _hits), Interlocked.Read(ref _misses), Interlocked.Read(ref _corrupt),
        Interlocked.Read(ref _errors), Interlocked.Read(ref _timeouts),
        Interlocked.Read(ref _enqueued) - Interlocked.Read(ref _writtenCount), Interlocked.Read(ref _queueBytes),
        Interlocked.Read(ref _writtenCount), Interlocked.Read(ref _dropped), Volatile.Read(ref _lastError),
        Interlocked.Read(ref _lastErrorAt) is var at and > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(at) : null);

    /// <summary>Counts values read back from the cluster that failed their checksum (each one was treated as a miss).</summary>
    public void ReportCorrupt(int n) => Interlocked.Add(ref _corrupt, n);

    /// <summary>Counts the outcome of a read of rows the local tiers missed.</summary>
    public void ReportRead(int hits, int misses)
    {
        Interlocked.Add(ref _hits, hits);
        Interlocked.Add(ref _misses, misses);
    }

    /// <summary>
    /// Reads <paramref name="keys"/> (grouped by hash slot, one MGET per slot, all pipelined) into
    /// <paramref name="values"/> (null: no such key). False when the cluster did not answer within the operation
    /// timeout, failed, or is skipped by the open breaker; then nothing in <paramref name="values"/> is to be used.
    /// </summary>
    public bool TryGetMany(IReadOnlyList<byte[]> keys, byte[]?[] values)
    {
        if (keys.Count == 0)
            return true;
        var (order, runs) = GroupBySlot(keys);
        if (!TryCall(db => Task.WhenAll(runs.Select(run =>
            {
                var group = new RedisKey[run.Count];
                for (var j = 0; j < run.Count; j++)
                    group[j] = keys[order[run.Start + j]];
                return db.StringGetAsync(group);
            })), out var got))
        {
            return false;
        }

        Interlocked.Increment(ref _readBatches);
        for (var r = 0; r < runs.Count; r++)
        {
            for (var j = 0; j < got[r].Length; j++)
                values[order[runs[r].Start + j]] = got[r][j].IsNull ? null : (byte[]?)got[r][j];
        }

        return true;
    }

    /// <summary>Which of <paramref name="keys"/> exist (pipelined EXISTS); false as <see cref="TryGetMany"/>.</summary>
    public bool TryExistsMany(IReadOnlyList<byte[]> keys, bool[] exists)
    {
        if (keys.Count == 0)
            return true;
        if (!TryCall(db => Task.WhenAll(keys.Select(k => db.KeyExistsAsync(k))), out var found))
            return false;
        found.CopyTo(exists, 0);
        return true;
    }

    /// <summary>
    /// Queues writes for the cluster (write-behind): never blocks. When the queue holds
    /// <see cref="RemoteOptions.WriteQueueBytes"/> already, the batch is dropped and counted (a lost write costs a
    /// re-encode, never a wrong value). False when dropped.
    /// </summary>
    public bool Enqueue(byte[][] keys, byte[][] values)
    {
        long bytes = 0;
        for (var i = 0; i < keys.Length; i++)
            bytes += keys[i].Length + values[i].Length;
        if (Interlocked.Add(ref _queueBytes, bytes) > Options.WriteQueueBytes || Volatile.Read(ref _disposed) != 0)
        {
            Interlocked.Add(ref _queueBytes, -bytes);
            Interlocked.Add(ref _dropped, keys.Length);
            return false;
        }

        Interlocked.Add(ref _enqueued, keys.Length);
        _queue.Writer.TryWrite(new WriteBatch(keys, values, bytes));
        return true;
    }

    /// <summary>Writes dropped so far (queue full); a caller compares two readings to learn whether its writes all went out.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>
    /// Waits until every write queued before this call has reached the cluster; false when <paramref name="timeout"/>
    /// passes first (the cluster is down or slow; the writes stay queued and go out when it is back).
    /// </summary>
    public async Task<bool> FlushAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var target = Interlocked.Read(ref _enqueued);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            while (true)
            {
                var changed = Volatile.Read(ref _written).Task;
                // Dropped writes never enter the count of queued ones: once as many have gone out as were queued
                // before this call, ours are out (the queue is first in, first out).
                if (Interlocked.Read(ref _writtenCount) >= target)
                    return true;
                await changed.WaitAsync(deadline.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>
    /// Deletes <paramref name="keys"/> (values that failed their checksum, so no node reads them again; the next
    /// write of each puts a good one back). Best effort: false when the cluster did not answer.
    /// </summary>
    public bool TryDelete(IReadOnlyList<byte[]> keys) =>
        keys.Count == 0 || TryCall(db => Task.WhenAll(keys.Select(k => db.KeyDeleteAsync(k))), out _);

    /// <summary>All fields of a hash (a manifest); null when the cluster did not answer (empty: no such hash).</summary>
    public Dictionary<string, string>? TryHashGetAll(string key) =>
        TryCall(db => db.HashGetAllAsync(key), out var entries)
            ? entries.ToDictionary(e => (string)e.Name!, e => (string)e.Value!, StringComparer.Ordinal)
            : null;

    /// <summary>Sets fields of a hash (a manifest); false when the cluster did not take them.</summary>
    public bool TryHashSet(string key, IReadOnlyDictionary<string, string> fields) =>
        TryCall(async db =>
        {
            await db.HashSetAsync(key, fields.Select(f => new HashEntry(f.Key, f.Value)).ToArray()).ConfigureAwait(false);
            return true;
        }, out _);

    /// <summary>
    /// One call on the cluster, through the breaker and within the operation timeout. False (and counted) when the
    /// breaker skips it, it times out or it fails.
    /// </summary>
    private bool TryCall<T>(Func<IDatabase, Task<T>> call, out T result)
    {
        result = default!;
        if (!Breaker.Allow())
            return false;
        try
        {
            var task = call(_db);
            if (!Await(task))
                return false;
            Breaker.Success();
            result = task.Result;
            return true;
        }
        catch (Exception e) when (IsClusterFault(e))
        {
            Failed(e);
            return false;
        }
    }

    /// <summary>Waits for a cluster call within the operation timeout; a timeout counts as a failure.</summary>
    private bool Await(Task task)
    {
        if (task.Wait(_timeout))
            return true;
        // Observe its eventual outcome so it never surfaces as an unobserved exception.
        task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        Interlocked.Increment(ref _timeouts);
        Failed(new TimeoutException($"the cluster did not answer within {_timeout.TotalMilliseconds:0} ms"));
        return false;
    }

    internal void Failed(Exception e)
    {
        Breaker.Failure();
        Interlocked.Increment(ref _errors);
        var message = e is AggregateException { InnerException: { } inner } ? inner.Message : e.Message;
        var first = Interlocked.Exchange(ref _lastError, message) != message;
        Interlocked.Exchange(ref _lastErrorAt, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        if (first)
            RemoteLog.Error(_logger, message);
    }

    internal static bool IsClusterFault(Exception e) =>
        e is RedisException or TimeoutException or ObjectDisposedException or InvalidOperationException
        || e is AggregateException { InnerException: { } inner } && IsClusterFault(inner);

    /// <summary>Positions of <paramref name="keys"/> ordered by hash slot, and the runs of one slot in that order.</summary>
    private (int[] Order, List<(int Start, int Count)> Runs) GroupBySlot(IReadOnlyList<byte[]> keys)
    {
        var n = keys.Count;
        var slots = new int[n];
        var order = new int[n];
        for (var i = 0; i < n; i++)
        {
            slots[i] = _mux.HashSlot(keys[i]);
            order[i] = i;
        }

        Array.Sort(slots, order);
        var runs = new List<(int, int)>();
        for (var start = 0; start < n;)
        {
            var end = start + 1;
            while (end < n && slots[end] == slots[start])
                end++;
            runs.Add((start, end - start));
            start = end;
        }

        return (order, runs);
    }

    private async Task WriteLoopAsync()
    {
        var token = _stopping.Token;
        var keys = new List<byte[]>(MaxWriteEntries);
        var values = new List<byte[]>(MaxWriteEntries);
        try
        {
            while (await _queue.Reader.WaitToReadAsync(token).ConfigureAwait(false))
            {
                keys.Clear();
                values.Clear();
                long bytes = 0;
                while (keys.Count < MaxWriteEntries && _queue.Reader.TryRead(out var batch))
                {
                    keys.AddRange(batch.Keys);
                    values.AddRange(batch.Values);
                    bytes += batch.Bytes;
                }

                await WriteOutAsync(keys, values, token).ConfigureAwait(false);
                Interlocked.Add(ref _queueBytes, -bytes);
                Interlocked.Add(ref _writtenCount, keys.Count);
                Interlocked.Exchange(ref _written, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
    }

    /// <summary>Writes a batch (one MSET per hash slot, pipelined), retrying while the cluster is down; returns once it is written.</summary>
    private async Task WriteOutAsync(List<byte[]> keys, List<byte[]> values, CancellationToken token)
    {
        var (order, runs) = GroupBySlot(keys);
        while (true)
        {
            token.ThrowIfCancellationRequested();
            if (!Breaker.Allow())
            {
                await Task.Delay(Breaker.UntilProbe + TimeSpan.FromMilliseconds(10), token).ConfigureAwait(false);
                continue;
            }

            try
            {
                var tasks = new Task[runs.Count];
                for (var r = 0; r < runs.Count; r++)
                {
                    var (start, count) = runs[r];
                    if (count == 1)
                    {
                        tasks[r] = _db.StringSetAsync(keys[order[start]], values[order[start]]);
                        continue;
                    }

                    var pairs = new KeyValuePair<RedisKey, RedisValue>[count];
                    for (var j = 0; j < count; j++)
                        pairs[j] = new(keys[order[start + j]], values[order[start + j]]);
                    tasks[r] = _db.StringSetAsync(pairs);
                }

                // A write batch may be large: allow it a few operation timeouts.
                await Task.WhenAll(tasks).WaitAsync(_timeout * 4, token).ConfigureAwait(false);
                Breaker.Success();
                return;
            }
            catch (Exception e) when (IsClusterFault(e) && !token.IsCancellationRequested)
            {
                if (e is TimeoutException)
                    Interlocked.Increment(ref _timeouts);
                Failed(e);
            }
        }
    }

    /// <summary>Gives queued writes up to <paramref name="drain"/> to go out, then closes the connection.</summary>
    public void Dispose() => Dispose(TimeSpan.FromSeconds(2));

    public void Dispose(TimeSpan drain)
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        try
        {
            if (!FlushAsync(drain, CancellationToken.None).GetAwaiter().GetResult())
                RemoteLog.Abandoned(_logger, Interlocked.Read(ref _enqueued) - Interlocked.Read(ref _writtenCount));
        }
        finally
        {
            _queue.Writer.TryComplete();
            _stopping.Cancel();
            try
            {
                _writer.GetAwaiter().GetResult();
            }
            catch (Exception e) when (IsClusterFault(e) || e is OperationCanceledException)
            {
            }

            _mux.Dispose();
            _stopping.Dispose();
        }
    }

    private sealed record WriteBatch(byte[][] Keys, byte[][] Values, long Bytes);
}

internal static partial class RemoteLog
{
    [LoggerMessage(EventId = 3101, Level = LogLevel.Information, Message = "Remote tier: connected to the cluster at {Endpoints}")]
    public static partial void Connected(ILogger logger, string endpoints);

    [LoggerMessage(EventId = 3102, Level = LogLevel.Warning, Message = "Remote tier: the cluster at {Endpoints} is not reachable; serving from the local tiers and reconnecting in the background")]
    public static partial void NotConnected(ILogger logger, string endpoints);

    [LoggerMessage(EventId = 3103, Level = LogLevel.Warning, Message = "Remote tier: {Error} (served from the local tiers; the circuit breaker bounds the added latency)")]
    public static partial void Error(ILogger logger, string error);

    [LoggerMessage(EventId = 3104, Level = LogLevel.Warning, Message = "Remote tier: {Count} queued writes never reached the cluster before shutdown (they cost a re-encode, never a wrong value)")]
    public static partial void Abandoned(ILogger logger, long count);

    [LoggerMessage(EventId = 3105, Level = LogLevel.Warning, Message = "Remote tier: {Count} value(s) of {What} from the cluster failed their checksum; treated as misses, never served. First: {First}")]
    public static partial void Corrupt(ILogger logger, int count, string what, string first);
}
