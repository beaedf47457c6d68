using System.Diagnostics;
using EmbedCache.Bench.Compare;
using EmbedCache.CacheClient;
using Grpc.Net.Client;
using static EmbedCache.Bench.Cli;
using static EmbedCache.Bench.Compare.Datasets;
using static EmbedCache.Bench.Compare.Measurement;
using static EmbedCache.Bench.Compare.Processes;
using static EmbedCache.Bench.Compare.PrewarmScenario;
using static EmbedCache.Bench.Compare.Workloads;

namespace EmbedCache.Bench;

/// <summary>
/// The profiling harness for issue 7: starts the built service (as <c>compare</c> does) and drives one workload
/// for a fixed time, printing the service's pid first so a profiler can attach to it, e.g.
/// <c>dotnet-trace collect -p PID --duration 00:00:10</c>. Workloads: <c>epoch</c> (StreamDataset float32),
/// <c>epoch16</c>, <c>lookup</c> (GetEmbeddings, 256 keys, --clients N), <c>ceiling</c> (the bare gRPC stream), <c>prewarm</c> (minilm over --items sentences, --clients workers), <c>fill</c> (the mlp encoder over --items vectors, repeated: the fill
/// pipeline's own speed), <c>pretrained</c> (compare's all-minilm-l6-v2 scenario alone; <c>pretrained-quick</c> on a subset).
/// </summary>
public sealed class HotPathBench : IBench
{
    public string Name => "hotpath";

    public string Description => "drive one workload against the service for profiling: epoch|epoch16|lookup|alloc|ceiling|prewarm|fill|pretrained[-quick]|checkpoint [--seconds N] [--items N] [--clients N] [--memory]";

    public async Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var workload = args.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal)) ?? "epoch";
        var seconds = double.Parse(Option(args, "--seconds") ?? "20", System.Globalization.CultureInfo.InvariantCulture);
        var items = int.Parse(Option(args, "--items") ?? "100000", System.Globalization.CultureInfo.InvariantCulture);
        var clients = int.Parse(Option(args, "--clients") ?? "4", System.Globalization.CultureInfo.InvariantCulture);
        return await HotPathAsync(workload, seconds, items, clients, Option(args, "--repo") ?? FindRepo(), args.Contains("--memory"), cancellationToken);
    }

    /// <param name="memoryOnly">Run the service without a SaveDir (nothing is written to disk; checkpoints are no-ops).</param>
    private static async Task<int> HotPathAsync(string workload, double seconds, int items, int clients, string repo, bool memoryOnly, CancellationToken token)
    {
        var root = Path.Combine(Path.GetTempPath(), "embedcache-hotpath-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            if (workload is "pretrained" or "pretrained-quick")
                return await PretrainedTextScenario.RunAloneAsync(repo, root, quick: workload == "pretrained-quick", token);

            var dataRoot = Path.Combine(root, "data");
            WriteVectorDataset(Path.Combine(dataRoot, "vec"), workload == "prewarm" ? 1000 : items);
            WriteTextDataset(Path.Combine(dataRoot, "text2"), workload == "prewarm" ? items : 30);
            var serviceDll = ServiceDll(repo);
            string[] serviceArgs =
            [
                .. CommonServiceArgs(memoryOnly ? "" : Path.Combine(root, "save"), dataRoot), "--EmbedCache:Datasets:vec=vec", "--EmbedCache:Datasets:text2=text2",
                .. Encoder("e32", "Cpu", "Float32", 256), .. Encoder("e16", "Cpu", "Float16", 256),
            ];
            using var transport = workload == "ceiling" ? await StartTransportAsync(token) : null;
            await using var service = await ServiceInstance.StartAsync(serviceDll, serviceArgs, token);
            using var client = new EmbedCacheClient(service.Uri);
            if (workload != "fill")
            {
                await PrewarmAsync(client, "vec", "e32", 256, token);
                await PrewarmAsync(client, "vec", "e16", 256, token);
            }

            Console.WriteLine($"service pid {service.Process.Id}{(transport is null ? "" : $"; transport pid {transport.Process.Id}")}; {workload} for {seconds} s");
            Console.Out.Flush();

            var clock = Stopwatch.StartNew();
            var rounds = 0;
            switch (workload)
            {
                case "epoch" or "epoch16":
                    var encoder = workload == "epoch" ? "e32" : "e16";
                    var rowBytes = encoder == "e32" ? RowBytes : RowBytes / 2;
                    var steady = Stopwatch.StartNew();
                    long steadyBytes = 0;
                    while (clock.Elapsed.TotalSeconds < seconds)
                    {
                        if (clock.Elapsed.TotalSeconds < 2)
                            steady.Restart(); // the first 2 s warm up
                        var bytes = await StreamEpochAsync(client, encoder, (uint)rounds++, token);
                        if (clock.Elapsed.TotalSeconds >= 2)
                            steadyBytes += bytes;
                    }

                    Log($"{workload}: {steadyBytes / rowBytes / steady.Elapsed.TotalSeconds:N0} embeddings/s over {steady.Elapsed.TotalSeconds:0.0} s after a 2 s warm-up ({rounds} epochs)");

                    break;
                case "prewarm":
                    await PrewarmAsync(client, "text2", "random-minilm", MiniLmBatch, token, workers: clients, split: "val");
                    Console.WriteLine("warm");
                    Console.Out.Flush();
                    var timed = await PrewarmAsync(client, "text2", "random-minilm", MiniLmBatch, token, workers: clients, split: "train");
                    var bare = BareMiniLm(dataRoot, MiniLmBatch, token);
                    Log($"prewarm minilm, {clients} workers: {timed.Wall:N1} items/s; bare encoder {bare:N1} items/s ({100 * timed.Wall / bare:0}%)");
                    break;
                case "fill":
                    // The fill pipeline's own speed: the 0.1 ms mlp encoder over --items vectors, again and again
                    // (the namespace dropped between runs) for --seconds.
                    while (clock.Elapsed.TotalSeconds < seconds || rounds == 0)
                    {
                        await client.DropNamespaceAsync("e32", cancellationToken: token);
                        PrewarmResult fill;
                        try
                        {
                            fill = await PrewarmAsync(client, "vec", "e32", 256, token, workers: clients);
                        }
                        catch (Grpc.Core.RpcException) when (service.Process.HasExited)
                        {
                            throw new InvalidOperationException($"the service exited:{Environment.NewLine}{service.Process.Output}");
                        }

                        rounds++;
                        Log($"fill {rounds}: {fill.Wall:N0} items/s wall ({fill.JobRate:N0} job-reported); {fill.Message}");
                    }

                    break;
                case "alloc":
                    await using (var stream = client.OpenPooledLookupStream(token))
                    {
                        var random = new Random(1);
                        var fixedRequest = RandomLookup("e32", items, 256, random);
                        for (var i = 0; i < 2000; i++)
                            await stream.LookupAsync(fixedRequest, token);
                        var before = GC.GetTotalAllocatedBytes(true);
                        for (var i = 0; i < 2000; i++)
                            await stream.LookupAsync(fixedRequest, token);
                        var same = (GC.GetTotalAllocatedBytes(true) - before) / 2000;
                        before = GC.GetTotalAllocatedBytes(true);
                        for (var i = 0; i < 2000; i++)
                            RandomLookup("e32", items, 256, random);
                        var build = (GC.GetTotalAllocatedBytes(true) - before) / 2000;
                        Log($"client bytes allocated per GetEmbeddings of 256 keys: {same:N0} (same request object each time); building a request: {build:N0}");
                    }

                    {
                        var clientsArray = Enumerable.Range(0, clients).Select(_ => new EmbedCacheClient(service.Uri)).ToArray();
                        var streams = clientsArray.Select(c => c.OpenPooledLookupStream(token)).ToArray();
                        var requests = streams.Select((_, i) => RandomLookup("e32", items, 256, new Random(i))).ToArray();
                        async Task Loop(int c, int n)
                        {
                            for (var i = 0; i < n; i++)
                                await streams[c].LookupAsync(requests[c], token);
                        }

                        await Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(() => Loop(c, 2000))));
                        var before = GC.GetTotalAllocatedBytes(true);
                        await Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(() => Loop(c, 2000))));
                        Log($"{clients} concurrent clients: {(GC.GetTotalAllocatedBytes(true) - before) / (2000 * clients):N0} bytes allocated per GetEmbeddings");
                        foreach (var st in streams)
                            await st.DisposeAsync();
                        foreach (var c in clientsArray)
                            c.Dispose();
                    }

                    break;
                case "checkpoint":
                    for (var i = 0; i < (int)seconds; i++)
                    {
                        var c = await client.CheckpointAsync(token);
                        Log($"checkpoint {i}: {c.DurationMs:N0} ms (service-reported)");
                    }

                    break;
                case "lookup":
                    var (gen0, gen2, pause, allocated) = (GC.CollectionCount(0), GC.CollectionCount(2), GC.GetTotalPauseDuration(), GC.GetTotalAllocatedBytes());
                    var pace = double.Parse(Environment.GetEnvironmentVariable("HOTPATH_RATE") ?? "0", System.Globalization.CultureInfo.InvariantCulture);
                    var (p50, p99, lookups) = await LatencyAsync(service.Uri, items, clients, 2, seconds, token, pace);
                    Log($"lookup, {clients} clients: p50 {p50:0.00} ms, p99 {p99:0.00} ms, {lookups:N0} embeddings/s; client GCs: {GC.CollectionCount(0) - gen0} gen0, {GC.CollectionCount(2) - gen2} gen2, {(GC.GetTotalPauseDuration() - pause).TotalMilliseconds:N0} ms paused, {(GC.GetTotalAllocatedBytes() - allocated) / 1e6:N0} MB allocated");
                    break;
                case "ceiling":
                    using (var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{transport!.GrpcPort}", new GrpcChannelOptions { MaxReceiveMessageSize = null }))
                    {
                        var messages = (int)Math.Ceiling((double)items / StreamBatch);
                        while (clock.Elapsed.TotalSeconds < seconds)
                        {
                            var rate = await Rate(() => Transport.GrpcStreamAsync(channel, messages, StreamBatch * RowBytes, token));
                            rounds++;
                            Log($"ceiling {rounds}: {rate / RowBytes:N0} embeddings/s");
                        }
                    }

                    transport.Process.CloseInput();
                    await transport.Process.StopAsync(TimeSpan.FromSeconds(10));
                    break;
                default:
                    Console.Error.WriteLine($"unknown workload '{workload}': epoch, epoch16, lookup or ceiling");
                    return 2;
            }

            return 0;
        }
        finally
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
