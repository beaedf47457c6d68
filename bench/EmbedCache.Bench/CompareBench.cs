using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using EmbedCache.CacheClient;
using EmbedCache.Contract.V1;
using EmbedCache.Engine.Embeddings;
using EmbedCache.Engine.Encoders;
using EmbedCache.Engine.Keys;
using EmbedCache.Engine.Storage;
using Google.Protobuf;
using Grpc.Net.Client;
using StackExchange.Redis;

namespace EmbedCache.Bench;

/// <summary>
/// Issue 7: EmbedCache against the alternatives, in one run. Starts the built service (child process, free
/// loopback ports, its own temp SaveDir and data root), a real redis-server, and the bare transport servers;
/// prints one markdown section (headline lines first) to stdout, progress to stderr. See bench/run.sh.
/// </summary>
public sealed partial class CompareBench : IBench
{
    private const int Dim = 384;
    private const int InputLength = 64; // the mlp encoder's input vector
    private const int RowBytes = Dim * 4;
    private const int StreamBatch = 1024;

    public string Name => "compare";

    public string Description => "EmbedCache vs Redis, bare gRPC, loopback TCP, no cache; latency, prewarm, memory, restart [--quick] [--repo DIR] [--redis-server PATH]";

    /// <param name="Warm">Seconds each measured path runs before its measurement starts (JIT tiering, pools, HTTP/2 windows).</param>
    /// <param name="Seconds">Seconds each path is measured for, after its warm-up.</param>
    /// <param name="PrewarmSentences">Train split of the prewarm comparison's text dataset (its val split, a third of that, warms up).</param>
    private sealed record Settings(bool Quick, int Items, int BigItems, double Warm, double Seconds, int TrainEpochs, int Sentences, int PrewarmSentences);

    private static Settings SettingsFor(bool quick) => quick
        ? new Settings(true, 20_000, 100_000, 1.0, 1.5, 2, 120, 480)
        : new Settings(false, 100_000, 1_000_000, 3.0, 5.0, 3, 300, 3_600);

    private sealed record Row(string Path, string Batch, double EmbPerSec, double MBps, string Note);

    private readonly List<Row> _rows = [];
    private readonly List<string> _extra = [];

    public async Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var quick = args.Contains("--quick");
        var repo = Option(args, "--repo") ?? FindRepo();
        var redisServer = Option(args, "--redis-server") ?? "redis-server";
        var s = SettingsFor(quick);
        var root = Path.Combine(Path.GetTempPath(), "embedcache-bench-" + Guid.NewGuid().ToString("N")[..8]);
        var total = Stopwatch.StartNew();
        var loadStart = LoadAverage();
        try
        {
            Directory.CreateDirectory(root);
            return await RunCoreAsync(s, repo, redisServer, root, loadStart, total, cancellationToken);
        }
        finally
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException e)
            {
                Log($"could not remove {root}: {e.Message}");
            }
        }
    }

    private async Task<int> RunCoreAsync(Settings s, string repo, string redisServer, string root, string loadStart, Stopwatch total, CancellationToken token)
    {
        var serviceDll = Path.Combine(repo, "src/CacheService/bin/Release/net10.0/EmbedCache.CacheService.dll");
        var trainerDll = Path.Combine(repo, "src/Trainer/bin/Release/net10.0/EmbedCache.Trainer.dll");
        foreach (var f in new[] { serviceDll, trainerDll })
        {
            if (!File.Exists(f))
                throw new FileNotFoundException($"{f} not found: build Release first (bench/run.sh does)");
        }

        var dataRoot = Path.Combine(root, "data");
        Log($"datasets under {dataRoot}: {s.Items:N0} vectors, {s.Sentences} + {s.Sentences / 3} sentences");
        WriteVectorDataset(Path.Combine(dataRoot, "vec"), s.Items);
        WriteTextDataset(Path.Combine(dataRoot, "text"), s.Sentences);
        WriteTextDataset(Path.Combine(dataRoot, "text2"), s.PrewarmSentences); // enough sentences that the job's own start and end are a small part

        // --- transport ceilings and Redis (separate processes, like the service) ---
        using var transport = await StartTransportAsync(token);
        using var redis = await StartRedisAsync(redisServer, root, token);

        string[] serviceArgs =
        [
            .. CommonServiceArgs(Path.Combine(root, "save"), dataRoot),
            "--EmbedCache:Datasets:vec=vec", "--EmbedCache:Datasets:text=text", "--EmbedCache:Datasets:text2=text2",
            .. Encoder("e32", "Cpu", "Float32", 256), .. Encoder("e16", "Cpu", "Float16", 256),
            $"--EmbedCache:UnixSocketPath={Path.Combine(root, "s.sock")}",
        ];
        var service = await ServiceInstance.StartAsync(serviceDll, serviceArgs, token);
        try
        {
            using var client = new EmbedCacheClient(service.Uri);
            // The same service over its Unix socket: epochs through the shared-memory ring, and plain gRPC on the socket.
            var socket = new Uri("unix://" + Path.Combine(root, "s.sock"));
            using var sharedClient = new EmbedCacheClient(new EmbedCacheClientOptions { Address = socket, SharedMemory = SharedMemoryMode.Require });
            using var socketClient = new EmbedCacheClient(new EmbedCacheClientOptions { Address = socket, SharedMemory = SharedMemoryMode.Off });
            using var memcpy = new MemcpyCeiling(StreamBatch * RowBytes);

            // Prewarm e16 first (it warms up the service: JIT, libtorch threads), then e32 timed alone.
            // Two workers: a light encoder fills fastest with one single-threaded worker per core (FillPipeline gives
            // each of N workers cores / N libtorch threads), the reader and writer sharing the cores with them.
            await PrewarmAsync(client, "vec", "e16", 256, token, workers: FillWorkers);
            var prewarm = await PrewarmAsync(client, "vec", "e32", 256, token, workers: FillWorkers);

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
                var loadHeadline = LoadAverage();
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

                _rows.Add(new("cached epoch, StreamDataset, float32 (Cpu tier)", StreamBatch.ToString(CultureInfo.InvariantCulture), f32, f32 * RowBytes / 1e6, $"epochs of {s.Items:N0}, shuffled; client reads each batch into a pooled buffer (StreamEpochPooledAsync)"));
                _rows.Add(new("cached epoch, StreamDataset, float16", StreamBatch.ToString(CultureInfo.InvariantCulture), f16, f16 * RowBytes / 2 / 1e6, "768 B per embedding on the wire"));
                _rows.Add(new("Redis MGET epoch, same float32 values", StreamBatch.ToString(CultureInfo.InvariantCulture), redisEpoch, redisEpoch * RowBytes / 1e6, "StackExchange.Redis, 1 connection, shuffled keys, sequential MGETs"));
                _rows.Add(new("GetEmbeddings (1 stream, sequential)", "256", get256, get256 * RowBytes / 1e6, "random stored keys, float32; pooled client stream (OpenPooledLookupStream)"));
                _rows.Add(new("GetEmbeddings (1 stream, sequential)", "1024", get1024, get1024 * RowBytes / 1e6, "random stored keys, float32; pooled client stream (OpenPooledLookupStream)"));
                _rows.Add(new("Redis MGET (1 connection, sequential)", "256", redis256, redis256 * RowBytes / 1e6, "random keys"));
                _rows.Add(new("Redis MGET (1 connection, sequential)", "1024", redis1024, redis1024 * RowBytes / 1e6, "random keys"));
                _rows.Add(new("bare gRPC server stream (ceiling)", StreamBatch.ToString(CultureInfo.InvariantCulture), grpcCeiling / RowBytes, grpcCeiling / 1e6, $"{StreamBatch * RowBytes / 1e6:0.#} MB messages, custom marshaller, client reads without copying"));
                _rows.Add(new("raw loopback TCP (ceiling)", StreamBatch.ToString(CultureInfo.InvariantCulture), tcpCeiling / RowBytes, tcpCeiling / 1e6, "plain sockets, 1 MiB reads into one buffer"));

                _rows.Add(new("cached epoch, StreamDatasetShared (shared-memory ring), float32", StreamBatch.ToString(CultureInfo.InvariantCulture), shared, shared * RowBytes / 1e6, "the same epochs over the Unix socket: rows in a shared-memory ring, pooled client views (one copy, store → ring)"));
                _rows.Add(new("cached epoch, StreamDataset over the Unix socket, float32", StreamBatch.ToString(CultureInfo.InvariantCulture), socketGrpc, socketGrpc * RowBytes / 1e6, "gRPC as over TCP, on the Unix socket (SharedMemory: Off)"));
                _rows.Add(new("memcpy, one thread (ceiling of the shared-memory path)", StreamBatch.ToString(CultureInfo.InvariantCulture), memcpyRate, memcpyRate * RowBytes / 1e6, "an epoch's bytes copied batch by batch from a 1 GiB source into one batch buffer"));

                var storeReads = InProcessStoreReads(s.Items, s, token);
                _rows.Add(new("in-process store reads (FASTER, Cpu tier)", StreamBatch.ToString(CultureInfo.InvariantCulture), storeReads, storeReads * RowBytes / 1e6, "1 thread, shuffled epoch, checksums verified, no network"));

                var headline1 = FormattableString.Invariant(
                    $"cached epoch float32: {f32:N0} embeddings/s; {f32 / redisEpoch:0.0}× Redis; {100 * f32 * RowBytes / grpcCeiling:0}% of gRPC ceiling; {100 * f32 * RowBytes / tcpCeiling:0}% of loopback TCP");
                var headline2 = FormattableString.Invariant($"cached epoch float16: {f16:N0} embeddings/s");
                _sharedHeadline = FormattableString.Invariant(
                    $"shared-memory epoch float32: {shared:N0} embeddings/s; {shared * RowBytes / 1e9:0.00} GB/s; {shared / redisEpoch:0.0}× Redis; {100 * shared / memcpyRate:0}% of memcpy");
                _headline = [headline1, headline2, $"(load average {loadHeadline} when the epochs ran)"];
            }

            // Latency with 1, 4, 16 concurrent clients (each its own channel), saturated; then 4 clients paced at half
            // the saturated 4-client rate.
            var saturated4 = 0.0;
            foreach (var clients in new[] { 1, 4, 16 })
            {
                var (p50, p99, rate) = await LatencyAsync(service.Uri, s.Items, clients, s.Warm, s.Seconds, token);
                _latency.Add(FormattableString.Invariant($"| {clients} | closed loop (saturated) | {p50:0.00} | {p99:0.00} | {rate:N0} |"));
                if (clients == 4)
                    saturated4 = rate;
            }

            var paced = saturated4 / 2 / 256 / 4;
            var (pacedP50, pacedP99, pacedRate) = await LatencyAsync(service.Uri, s.Items, 4, s.Warm, s.Seconds, token, paced);
            _latency.Add(FormattableString.Invariant($"| 4 | paced, {paced:N0} requests/s each (half the saturated rate) | {pacedP50:0.00} | {pacedP99:0.00} | {pacedRate:N0} |"));

            // Prewarm vs the bare encoder at the same batch size: the MiniLM-shaped encoder (the cost a cache exists
            // to avoid; its forward pass dominates) and the tiny mlp (which measures the fill pipeline itself).
            // Both sides first encode the val split unmeasured (the first forward passes allocate libtorch's buffers and
            // JIT the tokenizer), then the train split is timed.
            await PrewarmAsync(client, "text2", "random-minilm", MiniLmBatch, token, workers: 1, split: "val");
            // The bare encoder runs before and after the prewarm and the two are averaged, so a drift in the host's
            // speed during the comparison falls on both sides.
            var bareBefore = BareMiniLm(dataRoot, MiniLmBatch, token);
            var text = await PrewarmAsync(client, "text2", "random-minilm", MiniLmBatch, token, workers: 1, split: "train");
            var bareAfter = BareMiniLm(dataRoot, MiniLmBatch, token);
            var bareText = (bareBefore + bareAfter) / 2;
            _extra.Add(FormattableString.Invariant(
                $"| prewarm minilm (6 layers, 384; batch {MiniLmBatch}, 1 worker), {s.PrewarmSentences:N0} sentences (after {s.PrewarmSentences / 3:N0} unmeasured) | {text.Wall:N1} items/s wall ({text.JobRate:N1} job-reported); job {text.Message} | bare `IEncoder.Encode` of the same sentences at batch {MiniLmBatch}, in the bench process: {bareText:N1} items/s (mean of {bareBefore:N1} before and {bareAfter:N1} after) | **{100 * text.Wall / bareText:0}%** of the bare encoder |"));
            var bare = BareEncoder(s.Items, 256, token);
            _extra.Add(FormattableString.Invariant(
                $"| prewarm e32 (mlp 64→384, batch 256, {FillWorkers} workers of 1 libtorch thread), {s.Items:N0} items, SaveDir on disk | {prewarm.Wall:N0} items/s wall ({prewarm.JobRate:N0} job-reported); job {prewarm.Message} | bare `IEncoder.Encode` at batch 256 ({Environment.ProcessorCount} libtorch threads): {bare:N0} items/s | **{100 * prewarm.Wall / bare:0}%** of the bare encoder (a 0.1 ms encoder: this is the fill pipeline's own speed) |"));

            // Training: the MiniLM-shaped encoder every epoch vs served from the cache.
            if (service.Process.HasExited)
                throw new InvalidOperationException($"the service exited:{Environment.NewLine}{service.Process.Tail}");
            await TrainingAsync(trainerDll, service.Uri, socket, dataRoot, root, s, token);
        }
        finally
        {
            await service.DisposeAsync();
        }

        // The real text model (its own service instance): prewarm vs a bare ONNX Runtime session, and the trainer.
        await PretrainedTextAsync(serviceDll, trainerDll, repo, root, s, token);

        // Memory per stored embedding and restart to serving, at BigItems.
        await MemoryAndRestartAsync(serviceDll, root, dataRoot, s.BigItems, token);

        transport.Process.CloseInput();
        await redis.Process.StopAsync(TimeSpan.FromSeconds(10));
        await transport.Process.StopAsync(TimeSpan.FromSeconds(10));

        Print(s, loadStart, total);
        return 0;
    }

    private string[] _headline = ["cached epoch float32: n/a", "cached epoch float16: n/a"];
    private string _sharedHeadline = "shared-memory epoch float32: n/a";
    private readonly List<string> _latency = [];

    private void Print(Settings s, string loadStart, Stopwatch total)
    {
        var o = Console.Out;
        o.WriteLine(_headline[0]);
        o.WriteLine(_headline[1]);
        o.WriteLine(_pretrainedHeadline);
        o.WriteLine(_sharedHeadline);
        o.WriteLine();
        o.WriteLine(FormattableString.Invariant(
            $"`bench/run.sh{(s.Quick ? " --quick" : "")}` — {MachineInfo.Describe()}, {DateTime.UtcNow:HH:mm} UTC; load average {loadStart} at start, {LoadAverage()} at end; {total.Elapsed.TotalMinutes:0.0} min. {_headline[2]}."));
        o.WriteLine();
        o.WriteLine("| path | batch | embeddings/s | MB/s | × cached f32 epoch | note |");
        o.WriteLine("|---|---:|---:|---:|---:|---|");
        var f32 = _rows[0].EmbPerSec;
        foreach (var r in _rows)
            o.WriteLine(FormattableString.Invariant($"| {r.Path} | {r.Batch} | {r.EmbPerSec:N0} | {r.MBps:N0} | {r.EmbPerSec / f32:0.00} | {r.Note} |"));
        o.WriteLine();
        o.WriteLine("GetEmbeddings latency, 256 random float32 keys per request, each client its own channel and stream, sequential requests, pooled client streams:");
        o.WriteLine();
        o.WriteLine("| concurrent clients | load | p50 ms | p99 ms | embeddings/s (all clients) |");
        o.WriteLine("|---:|---|---:|---:|---:|");
        foreach (var l in _latency)
            o.WriteLine(l);
        o.WriteLine();
        o.WriteLine("| measurement | result | baseline | ratio |");
        o.WriteLine("|---|---|---|---|");
        foreach (var e in _extra)
            o.WriteLine(e);
        o.WriteLine();
    }

    // ------------------------------------------------------------------ service

    private static string[] CommonServiceArgs(string saveDir, string dataRoot) =>
    [
        "--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", $"--EmbedCache:SaveDir={saveDir}", $"--EmbedCache:DataRoot={dataRoot}",
        "--EmbedCache:Store:DefaultTier=Cpu", "--EmbedCache:Store:CheckpointIntervalSeconds=0",
    ];

    private static string[] Encoder(string name, string tier, string dtype, int batch) =>
    [
        $"--EmbedCache:Encoders:{name}:Kind=random-mlp", $"--EmbedCache:Encoders:{name}:Dim={Dim}", $"--EmbedCache:Encoders:{name}:Tier={tier}",
        $"--EmbedCache:Encoders:{name}:DType={dtype}", $"--EmbedCache:Encoders:{name}:BatchSize={batch}",
    ];

    private sealed partial class ServiceInstance : IAsyncDisposable
    {
        private ServiceInstance(ChildProcess process, Uri uri)
        {
            Process = process;
            Uri = uri;
        }

        public ChildProcess Process { get; }

        public Uri Uri { get; }

        /// <param name="onLine">Sees every output line (the restart bench keeps the service's recovery lines).</param>
        /// <param name="ready">Return once the service serves ('EmbedCache ready'); false: as soon as its ports are open.</param>
        public static async Task<ServiceInstance> StartAsync(string dll, string[] args, CancellationToken token, Action<string>? onLine = null, bool ready = true)
        {
            var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
            Uri? uri = null;
            var process = ChildProcess.Start("dotnet", [dll, .. args], line =>
            {
                onLine?.Invoke(line);
                var m = ListeningLine().Match(line);
                if (m.Success)
                    uri = new Uri(m.Groups[1].Value);
                if (uri is not null && (!ready || line.Contains("EmbedCache ready: ", StringComparison.Ordinal)))
                    listening.TrySetResult(uri);
                return true;
            }, Path.GetDirectoryName(dll));
            try
            {
                var timeout = Task.Delay(TimeSpan.FromSeconds(120), token);
                while (!listening.Task.IsCompleted)
                {
                    if (process.HasExited)
                        throw new InvalidOperationException($"the service exited during start-up:{Environment.NewLine}{process.Tail}");
                    if (timeout.IsCompleted)
                        throw new TimeoutException($"the service did not log 'EmbedCache {(ready ? "ready" : "listening")}' within 120 s:{Environment.NewLine}{process.Tail}");
                    await Task.WhenAny(listening.Task, Task.Delay(100, token));
                }

                return new ServiceInstance(process, await listening.Task);
            }
            catch
            {
                process.Dispose();
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            await Process.StopAsync(TimeSpan.FromSeconds(60));
            Process.Dispose();
        }

        [GeneratedRegex(@"EmbedCache listening: gRPC (http://[0-9.]+:[0-9]+)")]
        private static partial Regex ListeningLine();
    }

    private sealed record PrewarmResult(double Wall, double JobRate, string Message);

    private static async Task<PrewarmResult> PrewarmAsync(EmbedCacheClient client, string dataset, string encoder, int batch, CancellationToken token, int workers = 1, string? split = null)
    {
        var request = new PrewarmRequest { Dataset = dataset, BatchSize = (uint)batch, Workers = (uint)workers };
        if (split is not null)
            request.Splits.Add(split);
        request.Encoders.Add(encoder);
        var clock = Stopwatch.StartNew();
        PrewarmProgress? last = null;
        await foreach (var p in client.PrewarmAsync(request, token))
            last = p;
        clock.Stop();
        if (last is null || last.State != JobState.Completed)
            throw new InvalidOperationException($"prewarm of {dataset} for {encoder} ended {last?.State}: {last?.Message}");
        Log($"prewarm {encoder}: {last.Processed:N0} items in {clock.Elapsed.TotalSeconds:0.0} s (job rate {last.ItemsPerSecond:N0}/s; {last.Message})");
        return new PrewarmResult(last.Processed / clock.Elapsed.TotalSeconds, last.ItemsPerSecond, last.Message);
    }

    /// <summary>One epoch through StreamDataset; returns the embedding bytes received.</summary>
    private static async Task<long> StreamEpochAsync(EmbedCacheClient client, string encoder, uint epoch, CancellationToken token)
    {
        var request = new StreamDatasetRequest { Dataset = "vec", Split = "train", BatchSize = StreamBatch, Shuffle = true, Seed = 7, Epoch = epoch };
        request.Encoders.Add(encoder);
        long bytes = 0;
        await foreach (var batch in client.StreamEpochPooledAsync(request, token))
            bytes += batch.Results[0].Embeddings.Length;
        return bytes;
    }

    private static LookupRequest RandomLookup(string encoder, int items, int batch, Random random)
    {
        var keys = new PositionalKeys { Dataset = "vec", Split = "train" };
        for (var i = 0; i < batch; i++)
            keys.Indices.Add((ulong)random.Next(items));
        var request = new LookupRequest { Keys = new KeyBatch { Positional = keys } };
        request.Encoders.Add(encoder);
        return request;
    }

    /// <summary>
    /// p50/p99 of GetEmbeddings round trips (256 random keys) from <paramref name="clients"/> clients, each with its
    /// own channel and stream. Closed loop when <paramref name="requestsPerSecond"/> is 0 (each client sends its
    /// next request as soon as the previous one returns: the service is saturated, and latency is mostly queueing);
    /// otherwise each client sends on a fixed schedule of that many requests per second (as a trainer does, whose
    /// training step paces its lookups), and latency is timed from each actual send.
    /// </summary>
    private static async Task<(double P50, double P99, double Rate)> LatencyAsync(Uri uri, int items, int clients, double warm, double seconds, CancellationToken token, double requestsPerSecond = 0)
    {
        var all = new List<double>[clients];
        var deadline = DateTime.UtcNow.AddSeconds(seconds + warm + 0.5);
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var tasks = Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
        {
            using var client = new EmbedCacheClient(uri);
            await using var stream = client.OpenPooledLookupStream(token);
            var random = new Random(c);
            // Warm-up: every client runs the same loop, unmeasured, until the measurement starts.
            while (!start.Task.IsCompleted)
                await stream.LookupAsync(RandomLookup("e32", items, 256, random), token);
            var samples = new List<double>(4096);
            var schedule = Stopwatch.StartNew();
            while (DateTime.UtcNow < deadline && samples.Count < 1_000_000)
            {
                var request = RandomLookup("e32", items, 256, random);
                if (requestsPerSecond > 0)
                {
                    var due = TimeSpan.FromSeconds(samples.Count / requestsPerSecond) - schedule.Elapsed;
                    if (due > TimeSpan.Zero)
                        await Task.Delay(due, token);
                }

                var t0 = Stopwatch.GetTimestamp();
                var response = await stream.LookupAsync(request, token);
                samples.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                if (response.Count != 256)
                    throw new InvalidOperationException("short response");
            }

            all[c] = samples;
        }, token)).ToArray();
        await Task.Delay(TimeSpan.FromSeconds(warm), token); // every client connects and warms up
        deadline = DateTime.UtcNow.AddSeconds(seconds);
        var clock = Stopwatch.StartNew();
        start.SetResult();
        await Task.WhenAll(tasks);
        var merged = all.SelectMany(x => x).Order().ToArray();
        return (Percentile(merged, 0.50), Percentile(merged, 0.99), merged.Length * 256 / clock.Elapsed.TotalSeconds);
    }

    private static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];

    // ------------------------------------------------------------------ Redis

    private sealed record Started(ChildProcess Process, int Port) : IDisposable
    {
        public void Dispose() => Process.Dispose();
    }

    private sealed record TransportServers(ChildProcess Process, int GrpcPort, int TcpPort) : IDisposable
    {
        public void Dispose() => Process.Dispose();
    }

    private static async Task<TransportServers> StartTransportAsync(CancellationToken token)
    {
        var ports = new TaskCompletionSource<(int, int)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var dll = typeof(CompareBench).Assembly.Location;
        var process = ChildProcess.Start("dotnet", [dll, "transport-server"], line =>
        {
            var m = Regex.Match(line, "^ports grpc=([0-9]+) tcp=([0-9]+)");
            if (m.Success)
                ports.TrySetResult((int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture)));
            return true;
        });
        try
        {
            var (grpc, tcp) = await ports.Task.WaitAsync(TimeSpan.FromSeconds(60), token);
            return new TransportServers(process, grpc, tcp);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            var tail = process.Tail;
            process.Dispose();
            throw new InvalidOperationException($"the transport server did not start:{Environment.NewLine}{tail}", e);
        }
    }

    private static async Task<Started> StartRedisAsync(string redisServer, string root, CancellationToken token)
    {
        var port = FreePort();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var dir = Directory.CreateDirectory(Path.Combine(root, "redis")).FullName;
        var process = ChildProcess.Start(redisServer,
            ["--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--protected-mode", "yes"],
            line =>
            {
                if (line.Contains("Ready to accept connections", StringComparison.Ordinal))
                    ready.TrySetResult();
                return true;
            });
        try
        {
            await ready.Task.WaitAsync(TimeSpan.FromSeconds(30), token);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            var tail = process.Tail;
            process.Dispose();
            throw new InvalidOperationException($"redis-server did not start:{Environment.NewLine}{tail}", e);
        }

        Log($"redis-server on 127.0.0.1:{port} (pid {process.Pid})");
        return new Started(process, port);
    }

    private static int FreePort()
    {
        using var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        l.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)l.LocalEndPoint!).Port;
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
            var positional = new PositionalKeys { Dataset = "vec", Split = "train" };
            for (var i = 0; i < n; i++)
                positional.Indices.Add((ulong)(first + i));
            var request = new LookupRequest { Keys = new KeyBatch { Positional = positional } };
            request.Encoders.Add("e32");
            var response = await stream.LookupAsync(request, token);
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

    // ------------------------------------------------------------------ in process

    private static double InProcessStoreReads(int items, Settings s, CancellationToken token)
    {
        using var store = EmbeddingStore.Open(new StoreOptions { CheckpointInterval = TimeSpan.Zero });
        var ns = store.Register(new NamespaceSpec("bench", Fingerprint.Compute("bench/compare"), Dim, EmbeddingDType.Float32, EmbedCache.Engine.Embeddings.Tier.Cpu));
        var rows = new byte[StreamBatch * RowBytes];
        new Random(1).NextBytes(rows);
        var indices = new ulong[StreamBatch];
        using var session = store.NewSession();
        for (var first = 0; first < items; first += StreamBatch)
        {
            var n = Math.Min(StreamBatch, items - first);
            for (var i = 0; i < n; i++)
                indices[i] = (ulong)(first + i);
            session.Put(ns, ItemKeyBatch.Positional("vec", "train", indices.AsSpan(0, n)), rows.AsSpan(0, n * RowBytes));
        }

        var mask = new byte[StreamBatch / 8];
        var order = Enumerable.Range(0, items).Select(i => (ulong)i).ToArray();
        return MeasureAsync(s, [new("in-process store reads", 1, r =>
        {
            new Random(r).Shuffle(order);
            for (var first = 0; first < items; first += StreamBatch)
            {
                token.ThrowIfCancellationRequested();
                var n = Math.Min(StreamBatch, items - first);
                Array.Clear(mask);
                var found = session.Get(ns, ItemKeyBatch.Positional("vec", "train", order.AsSpan(first, n)), rows.AsSpan(0, n * RowBytes), mask, token);
                if (found != n)
                    throw new InvalidOperationException($"in-process store read {found} of {n}");
            }

            return Task.FromResult((long)items);
        })], token).GetAwaiter().GetResult()[0];
    }

    /// <summary>The same mlp encoder (seed 42, 64 → 384) in this process: items/s through Encode at the prewarm's batch size.</summary>
    private static double BareEncoder(int items, int batch, CancellationToken token)
    {
        using var encoder = EncoderRegistry.CreateEncoder("e32", new EncoderOptions { Kind = EncoderOptions.KindMlp, Dim = Dim, BatchSize = batch });
        var random = new Random(3);
        var values = new float[batch * InputLength];
        for (var i = 0; i < values.Length; i++)
            values[i] = (float)random.NextDouble();
        var features = new TensorFeatureBatch(values, [InputLength]);
        var output = new float[batch * Dim];
        encoder.Encode(features, output, token); // warm-up
        var clock = Stopwatch.StartNew();
        var done = 0;
        while (done < items)
        {
            encoder.Encode(features, output, token);
            done += batch;
        }

        return done / clock.Elapsed.TotalSeconds;
    }

    private const int MiniLmBatch = 32;

    /// <summary>Workers of the mlp prewarms.</summary>
    private const int FillWorkers = 2;

    /// <summary>The built-in minilm encoder in this process: sentences/s through Encode over the text2 train split.</summary>
    private static double BareMiniLm(string dataRoot, int batch, CancellationToken token)
    {
        string[] Sentences(string split) => File.ReadLines(Path.Combine(dataRoot, "text2", split + ".jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("text").GetString()!)
            .ToArray();
        var options = EncoderRegistry.Defaults()["random-minilm"];
        options.BatchSize = batch;
        using var encoder = EncoderRegistry.CreateEncoder("random-minilm", options);
        var output = new float[batch * encoder.Dim];
        void EncodeAll(string[] sentences)
        {
            for (var i = 0; i < sentences.Length; i += batch)
            {
                var chunk = sentences[i..Math.Min(i + batch, sentences.Length)];
                encoder.Encode(new TextFeatureBatch(chunk), output.AsSpan(0, chunk.Length * encoder.Dim), token);
            }
        }

        EncodeAll(Sentences("val")); // warm-up, as the service's is
        var train = Sentences("train");
        var clock = Stopwatch.StartNew();
        EncodeAll(train);
        return train.Length / clock.Elapsed.TotalSeconds;
    }

    // ------------------------------------------------------------------ training

    private async Task TrainingAsync(string trainerDll, Uri service, Uri socket, string dataRoot, string root, Settings s, CancellationToken token)
    {
        var epochs = s.TrainEpochs.ToString(CultureInfo.InvariantCulture);
        var cached = await RunTrainerAsync(trainerDll, Path.Combine(root, "train-cached"),
            ["train", "--dataset", "text", "--encoder", "random-minilm", "--epochs", epochs, "--service", service.ToString().TrimEnd('/')], token);
        // The same cached training on the service's Unix socket: its epochs take the shared-memory ring.
        var shared = await RunTrainerAsync(trainerDll, Path.Combine(root, "train-shared"),
            ["train", "--dataset", "text", "--encoder", "random-minilm", "--epochs", epochs, "--service", socket.ToString()], token);
        _extra.Add(FormattableString.Invariant(
            $"| training, {s.TrainEpochs} epochs, minilm, cached: shared memory (`--service unix://…`) | {shared.Wall:0.0} s wall; epochs {shared.Epochs} s | gRPC over TCP: {cached.Wall:0.0} s wall; epochs {cached.Epochs} s | **{cached.Steady / shared.Steady:0.00}×** per steady epoch |"));
        var local = await RunTrainerAsync(trainerDll, Path.Combine(root, "train-local"),
            ["train", "--dataset", "text", "--encoder", "random-minilm", "--epochs", epochs, "--no-cache", "--data-root", dataRoot], token);
        _extra.Add(FormattableString.Invariant(
            $"| training, {s.TrainEpochs} epochs, minilm (6 layers, 384), {s.Sentences} + {s.Sentences / 3} sentences: cached (service) | {cached.Wall:0.0} s wall; epochs {cached.Epochs} s | `--no-cache` (encode every epoch, in process): {local.Wall:0.0} s wall; epochs {local.Epochs} s | **{local.Wall / cached.Wall:0.0}×** wall, **{local.Steady / cached.Steady:0.0}×** per steady epoch |"));
    }

    private sealed record TrainerResult(double Wall, string Epochs, double Steady);

    private static async Task<TrainerResult> RunTrainerAsync(string dll, string outDir, string[] args, CancellationToken token)
    {
        Directory.CreateDirectory(outDir);
        var clock = Stopwatch.StartNew();
        using var process = ChildProcess.Start("dotnet", [dll, .. args, "--out", outDir], workingDirectory: outDir);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(token);
        timeout.CancelAfter(TimeSpan.FromMinutes(6));
        var code = await process.WaitAsync(timeout.Token);
        clock.Stop();
        if (code != 0)
            throw new InvalidOperationException($"trainer {string.Join(' ', args)} exited {code}:{Environment.NewLine}{process.Tail}");
        var metrics = Directory.GetFiles(outDir, "metrics.json", SearchOption.AllDirectories).FirstOrDefault()
            ?? throw new InvalidOperationException($"trainer wrote no metrics.json under {outDir}");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(metrics));
        var epochs = doc.RootElement.GetProperty("epochs").EnumerateArray()
            .Select(e => (Seconds: e.GetProperty("seconds").GetDouble(), Fill: e.GetProperty("fill").GetBoolean())).ToList();
        var steady = epochs.Where(e => !e.Fill).Select(e => e.Seconds).DefaultIfEmpty(double.NaN).Average();
        Log($"trainer {args[^1]}: {clock.Elapsed.TotalSeconds:0.0} s");
        return new TrainerResult(clock.Elapsed.TotalSeconds,
            string.Join(" / ", epochs.Select(e => e.Seconds.ToString("0.00", CultureInfo.InvariantCulture) + (e.Fill ? " (fill)" : ""))), steady);
    }

    // ------------------------------------------------------------------ memory and restart

    private async Task MemoryAndRestartAsync(string serviceDll, string root, string dataRoot, int items, CancellationToken token)
    {
        string[] args =
        [
            .. CommonServiceArgs(Path.Combine(root, "save-big"), dataRoot),
            .. Encoder("bigd", "Disk", "Float32", 1024), .. Encoder("bigc", "Cpu", "Float32", 1024),
            // Another seed: with the same weights both encoders would have one fingerprint, one namespace, one tier.
            "--EmbedCache:Encoders:bigd:Seed=7",
        ];
        // Resident memory is measured after the restart (so the fill's garbage is not counted): RSS of the
        // recovered service after one read of every key of a tier, minus RSS of the same service empty.
        long rss0, rssCpu, rssDisk;
        await using (var service = await ServiceInstance.StartAsync(serviceDll, args, token))
        {
            using var client = new EmbedCacheClient(service.Uri);
            await client.ListEncodersAsync(token);
            await Task.Delay(1000, token);
            rss0 = service.Process.ResidentBytes();
            await FillAsync(client, "bigd", items, token);
            await FillAsync(client, "bigc", items, token);
            await client.CheckpointAsync(token);
        }

        // Cold: the SaveDir's files evicted from the page cache, as after a reboot, so the figure does not depend on
        // what the run did before (recovery reads the whole Cpu-tier log back: warm it is memory speed, cold disk speed).
        EvictFromPageCache(Path.Combine(root, "save-big"));
        var clock = Stopwatch.StartNew();
        double listening, serving;
        await using (var service = await ServiceInstance.StartAsync(serviceDll, args, token, ready: false))
        {
            listening = clock.Elapsed.TotalSeconds;
            using var client = new EmbedCacheClient(service.Uri);
            serving = await FirstLookupAsync(client, items, clock, token);
            await ReadAllAsync(client, "bigc", items, token);
            rssCpu = service.Process.ResidentBytes();
            await ReadAllAsync(client, "bigd", items, token);
            rssDisk = service.Process.ResidentBytes();
        }

        // Warm: right after, the log still in the page cache.
        clock.Restart();
        double warmListening, warmServing;
        await using (var service = await ServiceInstance.StartAsync(serviceDll, args, token, ready: false))
        {
            warmListening = clock.Elapsed.TotalSeconds;
            using var client = new EmbedCacheClient(service.Uri);
            warmServing = await FirstLookupAsync(client, items, clock, token);
        }

        var perCpu = (double)(rssCpu - rss0) / items;
        var perDisk = (double)(rssDisk - rssCpu) / items;
        _extra.Add(FormattableString.Invariant(
            $"| resident memory, Cpu tier, {items:N0} × 1,536 B (RSS of the restarted service after reading every key, minus RSS empty) | {perCpu:N0} B/embedding | raw 1,536 B | **{perCpu / RowBytes:0.00}×** raw |"));
        _extra.Add(FormattableString.Invariant(
            $"| resident memory, Disk tier (64 MiB window), {items:N0} × 1,536 B | {perDisk:N0} B/embedding | raw 1,536 B | **{perDisk / RowBytes:0.00}×** raw |"));
        _extra.Add(FormattableString.Invariant(
            $"| restart to serving, {2 * items:N0} stored embeddings ({items:N0} Cpu + {items:N0} Disk), same SaveDir | **{serving:0.00} s** cold (SaveDir evicted from the page cache), **{warmServing:0.00} s** warm, to the first successful lookup | {listening:0.00} s / {warmListening:0.00} s to 'listening' | target < 5 s |"));
    }

    private static async Task ReadAllAsync(EmbedCacheClient client, string encoder, int items, CancellationToken token)
    {
        const int batch = 4096;
        await using var stream = client.OpenLookupStream(token);
        for (var first = 0; first < items; first += batch)
        {
            var n = Math.Min(batch, items - first);
            var positional = new PositionalKeys { Dataset = "big", Split = "train" };
            for (var i = 0; i < n; i++)
                positional.Indices.Add((ulong)(first + i));
            var request = new LookupRequest { Keys = new KeyBatch { Positional = positional } };
            request.Encoders.Add(encoder);
            var response = await stream.LookupAsync(request, token);
            if (response.Results[0].Found.Span.IndexOfAnyExcept((byte)0xFF) is var k && k >= 0 && k < n / 8)
                throw new InvalidOperationException($"{encoder}: stored keys missing after the restart");
        }
    }

    /// <summary>Read-through fill: GetEmbeddings with features for keys that miss (random 64-float inputs).</summary>
    private static async Task FillAsync(EmbedCacheClient client, string encoder, int items, CancellationToken token)
    {
        const int batch = 4096;
        var clock = Stopwatch.StartNew();
        var random = new Random(5);
        var floats = new float[batch * InputLength];
        for (var i = 0; i < floats.Length; i++)
            floats[i] = (float)(random.NextDouble() * 2 - 1);
        var data = System.Runtime.InteropServices.MemoryMarshal.AsBytes(floats.AsSpan()).ToArray();
        await using var stream = client.OpenLookupStream(token);
        for (var first = 0; first < items; first += batch)
        {
            var n = Math.Min(batch, items - first);
            var positional = new PositionalKeys { Dataset = "big", Split = "train" };
            for (var i = 0; i < n; i++)
                positional.Indices.Add((ulong)(first + i));
            var request = new LookupRequest
            {
                Keys = new KeyBatch { Positional = positional },
                Features = new Contract.V1.FeatureBatch { Tensor = new TensorFeatures { ItemShape = { InputLength }, Data = UnsafeByteOperations.UnsafeWrap(data.AsMemory(0, n * InputLength * 4)) } },
            };
            request.Encoders.Add(encoder);
            await stream.LookupAsync(request, token);
        }

        Log($"filled {items:N0} into {encoder} in {clock.Elapsed.TotalSeconds:0.0} s");
    }

    // ------------------------------------------------------------------ datasets and helpers

    private static void WriteVectorDataset(string dir, int items)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "dataset.json"),
            """{ "format": "jsonl", "splits": { "train": "train.jsonl" }, "features": { "kind": "vector", "field": "x", "shape": [64] }, "labels": { "kind": "group", "field": "label" } }""");
        var random = new Random(11);
        using var w = new StreamWriter(Path.Combine(dir, "train.jsonl"), false, new UTF8Encoding(false), 1 << 20);
        var sb = new StringBuilder(1024);
        for (var i = 0; i < items; i++)
        {
            sb.Clear().Append("{\"x\":[");
            for (var j = 0; j < InputLength; j++)
            {
                if (j > 0)
                    sb.Append(',');
                sb.Append((random.NextDouble() * 2 - 1).ToString("0.####", CultureInfo.InvariantCulture));
            }

            sb.Append("],\"label\":").Append(i % 100).Append('}');
            w.WriteLine(sb);
        }
    }

    private static readonly string[][] Topics =
    [
        ["the striker scored a late goal", "the team won the league", "fans cheered in the stadium", "the coach praised the defence", "a penalty decided the match"],
        ["the recipe needs fresh basil", "bake the bread for an hour", "the soup was too salty", "slice the onions thinly", "the chef plated the dessert"],
        ["the rocket reached orbit", "astronomers found a new comet", "the telescope imaged a galaxy", "the probe landed on the moon", "a meteor lit the night sky"],
        ["the market fell sharply today", "investors sold their shares", "the bank raised interest rates", "inflation slowed last month", "the company reported profits"],
        ["the storm flooded the valley", "heavy rain is expected tonight", "a heatwave hit the city", "snow closed the mountain pass", "winds knocked down power lines"],
        ["the band released a new album", "the concert sold out quickly", "the pianist played a sonata", "the singer won an award", "the guitar solo was loud"],
        ["the patient recovered quickly", "the doctor prescribed rest", "the vaccine trial succeeded", "the hospital opened a new ward", "the nurse checked the pulse"],
        ["the train was delayed again", "the airport added new flights", "traffic jammed the highway", "the ferry crossed the bay", "the bus route was extended"],
    ];

    private static void WriteTextDataset(string dir, int sentences)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "dataset.json"),
            """{ "format": "jsonl", "splits": { "train": "train.jsonl", "val": "val.jsonl" }, "features": { "kind": "text", "field": "text" }, "labels": { "kind": "group", "field": "label" } }""");
        string[] extras = ["", " this morning", " yesterday", " once more", " as expected", " for the first time", " after a long wait", " in the north"];
        void Write(string file, int count, int seed)
        {
            var random = new Random(seed);
            using var w = new StreamWriter(Path.Combine(dir, file));
            for (var i = 0; i < count; i++)
            {
                var g = i % Topics.Length;
                var text = Topics[g][random.Next(Topics[g].Length)] + extras[random.Next(extras.Length)];
                w.WriteLine(JsonSerializer.Serialize(new { text, label = g }));
            }
        }

        Write("train.jsonl", sentences, 1);
        Write("val.jsonl", sentences / 3, 2);
    }

    /// <summary>Bytes per second of one call that returns the bytes it moved.</summary>
    private static async Task<double> Rate(Func<Task<long>> once)
    {
        var clock = Stopwatch.StartNew();
        var bytes = await once();
        return bytes / clock.Elapsed.TotalSeconds;
    }

    /// <summary>A measured path: a round returns units; <paramref name="UnitBytes"/> turns them into embeddings (1 if they already are).</summary>
    private sealed record WirePath(string Name, int UnitBytes, Func<int, Task<long>> Round);

    /// <summary>
    /// Embeddings/s of every path, measured interleaved so that no path gains from running later (a warmer JIT in
    /// the shared client process) or loses to a passing disturbance on the shared host: each path first runs for
    /// <see cref="Settings.Warm"/> seconds unmeasured, then the paths take turns, <see cref="Slices"/> times, each
    /// turn running rounds back to back for <see cref="Settings.Seconds"/> ÷ slices. A path's rate is its units over
    /// its measured time.
    /// </summary>
    private static async Task<double[]> MeasureAsync(Settings s, WirePath[] paths, CancellationToken token)
    {
        const int Slices = 3;
        var r = new int[paths.Length];
        for (var p = 0; p < paths.Length; p++)
        {
            var warm = Stopwatch.StartNew();
            while (warm.Elapsed.TotalSeconds < s.Warm)
                await paths[p].Round(r[p]++);
        }

        var units = new long[paths.Length];
        var seconds = new double[paths.Length];
        for (var slice = 0; slice < Slices; slice++)
        {
            for (var p = 0; p < paths.Length; p++)
            {
                token.ThrowIfCancellationRequested();
                var clock = Stopwatch.StartNew();
                do
                    units[p] += await paths[p].Round(r[p]++);
                while (clock.Elapsed.TotalSeconds < s.Seconds / Slices);
                seconds[p] += clock.Elapsed.TotalSeconds;
            }
        }

        var rates = new double[paths.Length];
        for (var p = 0; p < paths.Length; p++)
        {
            rates[p] = units[p] / seconds[p] / paths[p].UnitBytes;
            Log(FormattableString.Invariant($"{paths[p].Name}: {rates[p]:N0} embeddings/s over {seconds[p]:0.0} s (after {s.Warm:0.#} s warm-up)"));
        }

        return rates;
    }

    private static string? Option(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static string FindRepo()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "EmbedCache.slnx")))
                return dir.FullName;
        }

        throw new InvalidOperationException("cannot find the repository root (EmbedCache.slnx); pass --repo DIR");
    }

    internal static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "n/a";
        }
    }

    private static void Log(string message) => Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] {message}");
}
