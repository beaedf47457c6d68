using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using EmbedCache.TestSupport;
using static EmbedCache.Bench.Cli;
using static EmbedCache.Bench.Compare.Datasets;

namespace EmbedCache.Bench.Compare;

/// <summary>
/// The processes a bench starts, each stopped by its own pid: the built service (its arguments, and waiting until it
/// serves), the transport servers, redis-server and the trainer (run to its end, its metrics read back).
/// </summary>
internal static class Processes
{
    /// <summary>
    /// A program started as the benches' child: its output goes to <paramref name="onLine"/> as it comes and its last
    /// 60 lines are kept (<see cref="ChildProcess.Output"/>) for the error message if it fails. The helper is
    /// TestSupport's, shared with the tests (that project depends on nothing but the BCL).
    /// </summary>
    public static ChildProcess Start(string fileName, IEnumerable<string> args, Action<string>? onLine = null, string? workingDirectory = null) =>
        ChildProcess.StartProgram(fileName, args, workingDirectory, onLine: onLine, keepLines: 60);

    /// <summary>The Release build of the service, as bench/run.sh builds it.</summary>
    public static string ServiceDll(string repo) => Path.Combine(repo, "src/CacheService/bin/Release/net10.0/EmbedCache.CacheService.dll");

    /// <summary>The Release build of the trainer.</summary>
    public static string TrainerDll(string repo) => Path.Combine(repo, "src/Trainer/bin/Release/net10.0/EmbedCache.Trainer.dll");

    public static string[] CommonServiceArgs(string saveDir, string dataRoot) =>
    [
        "--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", $"--EmbedCache:SaveDir={saveDir}", $"--EmbedCache:DataRoot={dataRoot}",
        "--EmbedCache:Store:DefaultTier=Cpu", "--EmbedCache:Store:CheckpointIntervalSeconds=0",
    ];

    public static string[] Encoder(string name, string tier, string dtype, int batch) =>
    [
        $"--EmbedCache:Encoders:{name}:Kind=random-mlp", $"--EmbedCache:Encoders:{name}:Dim={Dim}", $"--EmbedCache:Encoders:{name}:Tier={tier}",
        $"--EmbedCache:Encoders:{name}:DType={dtype}", $"--EmbedCache:Encoders:{name}:BatchSize={batch}",
    ];

    public sealed record Started(ChildProcess Process, int Port) : IDisposable
    {
        public void Dispose() => Process.Dispose();
    }

    public sealed record TransportServers(ChildProcess Process, int GrpcPort, int TcpPort) : IDisposable
    {
        public void Dispose() => Process.Dispose();
    }

    public static async Task<TransportServers> StartTransportAsync(CancellationToken token)
    {
        var ports = new TaskCompletionSource<(int, int)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var dll = typeof(CompareBench).Assembly.Location;
        var process = Processes.Start("dotnet", [dll, "transport-server"], line =>
        {
            var m = Regex.Match(line, "^ports grpc=([0-9]+) tcp=([0-9]+)");
            if (m.Success)
                ports.TrySetResult((int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture)));
        });
        try
        {
            var (grpc, tcp) = await ports.Task.WaitAsync(TimeSpan.FromSeconds(60), token);
            return new TransportServers(process, grpc, tcp);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            var tail = process.Output;
            process.Dispose();
            throw new InvalidOperationException($"the transport server did not start:{Environment.NewLine}{tail}", e);
        }
    }

    public static async Task<Started> StartRedisAsync(string redisServer, string root, CancellationToken token)
    {
        var port = FreePort();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var dir = Directory.CreateDirectory(Path.Combine(root, "redis")).FullName;
        var process = Processes.Start(redisServer,
            ["--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--protected-mode", "yes"],
            line =>
            {
                if (line.Contains("Ready to accept connections", StringComparison.Ordinal))
                    ready.TrySetResult();
            });
        try
        {
            await ready.Task.WaitAsync(TimeSpan.FromSeconds(30), token);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            var tail = process.Output;
            process.Dispose();
            throw new InvalidOperationException($"redis-server did not start:{Environment.NewLine}{tail}", e);
        }

        Log($"redis-server on 127.0.0.1:{port} (pid {process.Id})");
        return new Started(process, port);
    }

    public static int FreePort()
    {
        using var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        l.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)l.LocalEndPoint!).Port;
    }

    public sealed record TrainerResult(double Wall, string Epochs, double Steady);

    public static async Task<TrainerResult> RunTrainerAsync(string dll, string outDir, string[] args, CancellationToken token)
    {
        Directory.CreateDirectory(outDir);
        var clock = Stopwatch.StartNew();
        var run = await ProgramRun.RunAsync("dotnet", [dll, .. args, "--out", outDir], outDir, timeout: TimeSpan.FromMinutes(6), cancellationToken: token);
        clock.Stop();
        if (run.ExitCode != 0)
            throw new InvalidOperationException($"trainer {string.Join(' ', args)} exited {run.ExitCode}:{Environment.NewLine}{run}");
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

    public static double[] EpochSeconds(string outDir)
    {
        var metrics = Directory.GetFiles(outDir, "metrics.json", SearchOption.AllDirectories).First();
        using var doc = JsonDocument.Parse(File.ReadAllBytes(metrics));
        return doc.RootElement.GetProperty("epochs").EnumerateArray().Select(e => e.GetProperty("seconds").GetDouble()).ToArray();
    }
}

internal sealed partial class ServiceInstance : IAsyncDisposable
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
        var process = Processes.Start("dotnet", [dll, .. args], line =>
        {
            onLine?.Invoke(line);
            var m = ListeningLine().Match(line);
            if (m.Success)
                uri = new Uri(m.Groups[1].Value);
            if (uri is not null && (!ready || line.Contains("EmbedCache ready: ", StringComparison.Ordinal)))
                listening.TrySetResult(uri);
        }, Path.GetDirectoryName(dll));
        try
        {
            var timeout = Task.Delay(TimeSpan.FromSeconds(120), token);
            while (!listening.Task.IsCompleted)
            {
                if (process.HasExited)
                    throw new InvalidOperationException($"the service exited during start-up:{Environment.NewLine}{process.Output}");
                if (timeout.IsCompleted)
                    throw new TimeoutException($"the service did not log 'EmbedCache {(ready ? "ready" : "listening")}' within 120 s:{Environment.NewLine}{process.Output}");
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
