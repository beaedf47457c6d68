using System.Globalization;
using EmbedCache.CacheClient;
using EmbedCache.Contract.V1;
using Grpc.Net.Client;
using StackExchange.Redis;
using static EmbedCache.Bench.Cli;
using static EmbedCache.Bench.Compare.Datasets;
using static EmbedCache.Bench.Compare.Measurement;
using static EmbedCache.Bench.Compare.Workloads;

namespace EmbedCache.Bench.Compare;

/// <summary>
/// The table of rates and the first, second and fourth headline: every wire path (both cached epochs, the Redis epoch,
/// both transport ceilings, GetEmbeddings and MGET at 256 and 1024 keys, the shared-memory and Unix-socket epochs,
/// memcpy) measured interleaved in one <see cref="MeasureAsync"/>, Redis loaded first with the service's float32
/// bytes; then the in-process store reads.
/// </summary>
internal static class WirePathsScenario
{
    public static async Task RunAsync(CompareReport report, Settings s, EmbedCacheClient client, EmbedCacheClient sharedClient, EmbedCacheClient socketClient,
        MemcpyCeiling memcpy, Processes.TransportServers transport, Processes.Started redis, CancellationToken token)
    {
        // Redis holds the same float32 values, read back from the service.
        var redisConn = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{redis.Port},abortConnect=false,syncTimeout=30000,asyncTimeout=30000");
        await using (redisConn)
        {
            var db = redisConn.GetDatabase();
            var keys = await LoadRedisAsync(client, db, s.Items, token);

            // Every wire path, measured in the same run and interleaved (see MeasureAsync). The ceilings move the
            // same bytes as one float32 epoch, in messages of one stream batch.
            var messages = (int)Math.Ceiling((double)s.Items / StreamBatch);
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{transport.GrpcPort}", new GrpcChannelOptions { MaxReceiveMessageSize = null });
            await using var lookups256 = client.OpenPooledLookupStream(token);
            await using var lookups1024 = client.OpenPooledLookupStream(token);
            var random256 = new Random(256);
            var random1024 = new Random(1024);
            var loadHeadline = MachineInfo.LoadAverage();
            var rates = await MeasureAsync(s,
            [
                new("epoch f32", RowBytes, r => StreamEpochAsync(client, "e32", (uint)r, token)),
                new("epoch f16", RowBytes / 2, r => StreamEpochAsync(client, "e16", (uint)r, token)),
                new("Redis epoch", RowBytes, r => RedisEpochAsync(db, keys, r, token)),
                new("gRPC ceiling", RowBytes, _ => Transport.GrpcStreamAsync(channel, messages, StreamBatch * RowBytes, token)),
                new("TCP ceiling", RowBytes, _ => Transport.TcpStreamAsync(transport.TcpPort, messages, StreamBatch * RowBytes, token)),
                new("GetEmbeddings 256", 1, async _ => (await lookups256.LookupAsync(RandomLookup("e32", s.Items, 256, random256), token)).Count),
                new("GetEmbeddings 1024", 1, async _ => (await lookups1024.LookupAsync(RandomLookup("e32", s.Items, 1024, random1024), token)).Count),
                new("Redis MGET 256", 1, _ => RedisBatchAsync(db, keys, 256, random256)),
                new("Redis MGET 1024", 1, _ => RedisBatchAsync(db, keys, 1024, random1024)),
                new("shared-memory epoch f32", RowBytes, r => StreamEpochAsync(sharedClient, "e32", (uint)r, token)),
                new("gRPC epoch f32, Unix socket", RowBytes, r => StreamEpochAsync(socketClient, "e32", (uint)r, token)),
                new("memcpy", RowBytes, _ => Task.FromResult(memcpy.Copy((long)s.Items * RowBytes))),
            ], token);
            var (f32, f16, redisEpoch, grpcCeiling, tcpCeiling, get256, get1024, redis256, redis1024) =
                (rates[0], rates[1], rates[2], rates[3] * RowBytes, rates[4] * RowBytes, rates[5], rates[6], rates[7], rates[8]);
            var (shared, socketGrpc, memcpyRate) = (rates[9], rates[10], rates[11]);
            Log($"ceilings: gRPC {grpcCeiling / 1e6:N0} MB/s, TCP {tcpCeiling / 1e6:N0} MB/s; cached epoch: f32 {f32:N0}/s, f16 {f16:N0}/s; shared memory {shared:N0}/s, gRPC on the Unix socket {socketGrpc:N0}/s, memcpy {memcpyRate * RowBytes / 1e9:0.00} GB/s");

            report.Rows.Add(new("cached epoch, StreamDataset, float32 (Cpu tier)", StreamBatch.ToString(CultureInfo.InvariantCulture), f32, f32 * RowBytes / 1e6, $"epochs of {s.Items:N0}, shuffled; client reads each batch into a pooled buffer (StreamEpochPooledAsync)"));
            report.Rows.Add(new("cached epoch, StreamDataset, float16", StreamBatch.ToString(CultureInfo.InvariantCulture), f16, f16 * RowBytes / 2 / 1e6, "768 B per embedding on the wire"));
            report.Rows.Add(new("Redis MGET epoch, same float32 values", StreamBatch.ToString(CultureInfo.InvariantCulture), redisEpoch, redisEpoch * RowBytes / 1e6, "StackExchange.Redis, 1 connection, shuffled keys, sequential MGETs"));
            report.Rows.Add(new("GetEmbeddings (1 stream, sequential)", "256", get256, get256 * RowBytes / 1e6, "random stored keys, float32; pooled client stream (OpenPooledLookupStream)"));
            report.Rows.Add(new("GetEmbeddings (1 stream, sequential)", "1024", get1024, get1024 * RowBytes / 1e6, "random stored keys, float32; pooled client stream (OpenPooledLookupStream)"));
            report.Rows.Add(new("Redis MGET (1 connection, sequential)", "256", redis256, redis256 * RowBytes / 1e6, "random keys"));
            report.Rows.Add(new("Redis MGET (1 connection, sequential)", "1024", redis1024, redis1024 * RowBytes / 1e6, "random keys"));
            report.Rows.Add(new("bare gRPC server stream (ceiling)", StreamBatch.ToString(CultureInfo.InvariantCulture), grpcCeiling / RowBytes, grpcCeiling / 1e6, $"{StreamBatch * RowBytes / 1e6:0.#} MB messages, custom marshaller, client reads without copying"));
            report.Rows.Add(new("raw loopback TCP (ceiling)", StreamBatch.ToString(CultureInfo.InvariantCulture), tcpCeiling / RowBytes, tcpCeiling / 1e6, "plain sockets, 1 MiB reads into one buffer"));

            report.Rows.Add(new("cached epoch, StreamDatasetShared (shared-memory ring), float32", StreamBatch.ToString(CultureInfo.InvariantCulture), shared, shared * RowBytes / 1e6, "the same epochs over the Unix socket: rows in a shared-memory ring, pooled client views (one copy, store → ring)"));
            report.Rows.Add(new("cached epoch, StreamDataset over the Unix socket, float32", StreamBatch.ToString(CultureInfo.InvariantCulture), socketGrpc, socketGrpc * RowBytes / 1e6, "gRPC as over TCP, on the Unix socket (SharedMemory: Off)"));
            report.Rows.Add(new("memcpy, one thread (ceiling of the shared-memory path)", StreamBatch.ToString(CultureInfo.InvariantCulture), memcpyRate, memcpyRate * RowBytes / 1e6, "an epoch's bytes copied batch by batch from a 1 GiB source into one batch buffer"));

            var storeReads = StoreReadsScenario.Run(s.Items, s, token);
            report.Rows.Add(new("in-process store reads (FASTER, Cpu tier)", StreamBatch.ToString(CultureInfo.InvariantCulture), storeReads, storeReads * RowBytes / 1e6, "1 thread, shuffled epoch, checksums verified, no network"));

            var headline1 = FormattableString.Invariant(
                $"cached epoch float32: {f32:N0} embeddings/s; {f32 / redisEpoch:0.0}× Redis; {100 * f32 * RowBytes / grpcCeiling:0}% of gRPC ceiling; {100 * f32 * RowBytes / tcpCeiling:0}% of loopback TCP");
            var headline2 = FormattableString.Invariant($"cached epoch float16: {f16:N0} embeddings/s");
            report.SharedHeadline = FormattableString.Invariant(
                $"shared-memory epoch float32: {shared:N0} embeddings/s; {shared * RowBytes / 1e9:0.00} GB/s; {shared / redisEpoch:0.0}× Redis; {100 * shared / memcpyRate:0}% of memcpy");
            report.Headline = [headline1, headline2, $"(load average {loadHeadline} when the epochs ran)"];
        }
    }

    /// <summary>Copies the service's float32 embeddings into Redis (key e32:i), so both serve the same bytes.</summary>
    private static async Task<RedisKey[]> LoadRedisAsync(EmbedCacheClient client, IDatabase db, int items, CancellationToken token)
    {
        var keys = new RedisKey[items];
        for (var i = 0; i < items; i++)
            keys[i] = "e32:" + i.ToString(CultureInfo.InvariantCulture);
        await using var stream = client.OpenLookupStream(token);
        for (var first = 0; first < items; first += StreamBatch)
        {
            var n = Math.Min(StreamBatch, items - first);
            var response = await stream.LookupAsync(KeysLookup("vec", "e32", first, n), token);
            var rows = response.Results[0].Embeddings.Memory;
            var pairs = new KeyValuePair<RedisKey, RedisValue>[n];
            for (var i = 0; i < n; i++)
                pairs[i] = new(keys[first + i], rows.Slice(i * RowBytes, RowBytes).ToArray());
            await db.StringSetAsync(pairs);
        }

        var check = await db.StringGetAsync(keys[items - 1]);
        if (check.IsNull || ((byte[])check!).Length != RowBytes)
            throw new InvalidOperationException("Redis did not return the stored value");
        return keys;
    }

    /// <summary>One shuffled epoch of MGETs; returns the bytes received.</summary>
    private static async Task<long> RedisEpochAsync(IDatabase db, RedisKey[] keys, int round, CancellationToken token)
    {
        var order = keys.ToArray();
        new Random(round).Shuffle(order);
        var batch = new RedisKey[StreamBatch];
        long bytes = 0;
        for (var first = 0; first < order.Length; first += StreamBatch)
        {
            token.ThrowIfCancellationRequested();
            var n = Math.Min(StreamBatch, order.Length - first);
            if (n != batch.Length)
                batch = new RedisKey[n];
            Array.Copy(order, first, batch, 0, n);
            bytes += Sum(await db.StringGetAsync(batch));
        }

        return bytes;
    }

    /// <summary>One MGET of <paramref name="batch"/> random keys; returns the embeddings received.</summary>
    private static async Task<long> RedisBatchAsync(IDatabase db, RedisKey[] keys, int batch, Random random)
    {
        var request = new RedisKey[batch];
        for (var i = 0; i < batch; i++)
            request[i] = keys[random.Next(keys.Length)];
        return Sum(await db.StringGetAsync(request)) / RowBytes;
    }

    private static long Sum(RedisValue[] values)
    {
        long bytes = 0;
        foreach (var v in values)
        {
            if (v.IsNull)
                throw new InvalidOperationException("a Redis key was missing");
            bytes += v.Length();
        }

        return bytes;
    }
}
