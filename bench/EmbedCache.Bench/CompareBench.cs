using System.Diagnostics;
using EmbedCache.Bench.Compare;
using EmbedCache.CacheClient;
using static EmbedCache.Bench.Cli;
using static EmbedCache.Bench.Compare.Datasets;
using static EmbedCache.Bench.Compare.Processes;
using static EmbedCache.Bench.Compare.PrewarmScenario;
using static EmbedCache.Bench.Compare.Workloads;

namespace EmbedCache.Bench;

/// <summary>
/// Issue 7: EmbedCache against the alternatives, in one run. Starts the built service (child process, free
/// loopback ports, its own temp SaveDir and data root), a real redis-server, and the bare transport servers;
/// prints one markdown section (headline lines first) to stdout, progress to stderr. See bench/run.sh.
/// </summary>
/// <remarks>
/// This file is the run's order; its parts are in Compare/: the processes (<see cref="Processes"/>,
/// <see cref="ServiceInstance"/>), the data (<see cref="Datasets"/>), what is asked of the service
/// (<see cref="Workloads"/>), the measurement (<see cref="Measurement"/>), one file per scenario (*Scenario.cs) and
/// the report (<see cref="CompareReport"/>).
/// </remarks>
public sealed class CompareBench : IBench
{
    public string Name => "compare";

    public string Description => "EmbedCache vs Redis, bare gRPC, loopback TCP, no cache; latency, prewarm, memory, restart, remote tier [--quick] [--repo DIR] [--redis-server PATH] [--only remote]";

    public async Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var quick = args.Contains("--quick");
        var repo = Option(args, "--repo") ?? FindRepo();
        var redisServer = Option(args, "--redis-server") ?? "redis-server";
        var only = Option(args, "--only");
        if (only is not null && only != "remote")
        {
            Console.Error.WriteLine($"--only {only}: the scenario that runs alone is 'remote' (the remote tier on a Redis Cluster)");
            return 2;
        }
        var s = Settings.For(quick);
        var root = Path.Combine(Path.GetTempPath(), "embedcache-bench-" + Guid.NewGuid().ToString("N")[..8]);
        var total = Stopwatch.StartNew();
        var loadStart = MachineInfo.LoadAverage();
        try
        {
            Directory.CreateDirectory(root);
            return only is null
                ? await RunCoreAsync(s, repo, redisServer, root, loadStart, total, cancellationToken)
                : await RunRemoteOnlyAsync(s, repo, redisServer, root, loadStart, total, cancellationToken);
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

    private static async Task<int> RunCoreAsync(Settings s, string repo, string redisServer, string root, string loadStart, Stopwatch total, CancellationToken token)
    {
        var report = new CompareReport();
        var serviceDll = ServiceDll(repo);
        var trainerDll = TrainerDll(repo);
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

            await WirePathsScenario.RunAsync(report, s, client, sharedClient, socketClient, memcpy, transport, redis, token);
            await LatencyScenario.RunAsync(report, service.Uri, s, token);
            await PrewarmScenario.RunAsync(report, client, prewarm, dataRoot, s, token);

            // Training: the MiniLM-shaped encoder every epoch vs served from the cache.
            if (service.Process.HasExited)
                throw new InvalidOperationException($"the service exited:{Environment.NewLine}{service.Process.Output}");
            await TrainingScenario.RunAsync(report, trainerDll, service.Uri, socket, dataRoot, root, s, token);
        }
        finally
        {
            await service.DisposeAsync();
        }

        // The real text model (its own service instance): prewarm vs a bare ONNX Runtime session, and the trainer.
        await PretrainedTextScenario.RunAsync(report, serviceDll, trainerDll, repo, root, s, token);

        // Memory per stored embedding and restart to serving, at BigItems.
        await MemoryRestartScenario.RunAsync(report, serviceDll, root, dataRoot, s.BigItems, token);

        // Scale-out: nodes sharing a Redis Cluster (the remote tier), with the standalone redis-server as a baseline.
        await RemoteTierScenario.RunAsync(report, serviceDll, repo, root, redis, s, token);

        transport.Process.CloseInput();
        await redis.Process.StopAsync(TimeSpan.FromSeconds(10));
        await transport.Process.StopAsync(TimeSpan.FromSeconds(10));

        report.Print(s, loadStart, total);
        return 0;
    }

    /// <summary><c>--only remote</c>: the remote-tier scenario alone, with a standalone redis-server of its own.</summary>
    private static async Task<int> RunRemoteOnlyAsync(Settings s, string repo, string redisServer, string root, string loadStart, Stopwatch total, CancellationToken token)
    {
        var serviceDll = ServiceDll(repo);
        if (!File.Exists(serviceDll))
            throw new FileNotFoundException($"{serviceDll} not found: build src/CacheService in Release first");
        var report = new CompareReport();
        using var redis = await StartRedisAsync(redisServer, root, token);
        await RemoteTierScenario.RunAsync(report, serviceDll, repo, root, redis, s, token);
        await redis.Process.StopAsync(TimeSpan.FromSeconds(10));
        report.PrintRemoteOnly(s, loadStart, total);
        return 0;
    }
}
