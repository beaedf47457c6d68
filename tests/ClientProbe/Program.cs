using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using EmbedCache.CacheClient;
using EmbedCache.Contract.V1;

// Every command takes --shared auto|off|require (epoch streams over shared memory; default auto: on a unix:// service)
// and --ring-bytes N (the shared-memory ring to ask for; default the service's).
// epoch --service URL --dataset D --split S --encoder E [--batch-size N] [--seed N] [--epoch N] [--shuffle] [--start-offset N] --out DIR
//   [--pause-after N]: after N batches, print "paused" and wait to be killed (a reader that dies mid-epoch)
//   writes DIR/embeddings.bin (every batch's packed rows, as received), indices.bin (uint64) and labels.bin (int64)
//   and prints one JSON line: items, dim, dtype, fingerprint.
// hash (--texts FILE.json | --tensors FILE.f32 --shape D[xD...]): the .NET client's content keys, one hex line per item.
// bench --service URL --dataset D --split S --encoder E [--batch-size N] --seconds N [--warmup N]
//   streams epochs (pooled, as the trainer does) for the given time after a warm-up; prints one JSON line
//   (items, seconds, and the CPU time this process spent).
var options = Options.Parse(args);
try
{
    return options.Command switch
    {
        "epoch" => await EpochAsync(options),
        "hash" => Hash(options),
        "bench" => await BenchAsync(options),
        _ => Usage(),
    };
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    return Usage();
}

static int Usage()
{
    Console.Error.WriteLine("usage: EmbedCache.ClientProbe epoch|hash|bench [options] (see Program.cs)");
    return 2;
}

static EmbedCacheClient Connect(Options o) => new(new EmbedCacheClientOptions
{
    Address = new Uri(o.Require("service")),
    ApiKey = o.Get("api-key"),
    SharedMemory = o.Get("shared") switch
    {
        null or "auto" => SharedMemoryMode.Auto,
        "off" => SharedMemoryMode.Off,
        "require" => SharedMemoryMode.Require,
        var other => throw new ArgumentException($"--shared must be auto, off or require (was '{other}')"),
    },
    SharedMemoryRingBytes = long.Parse(o.Get("ring-bytes") ?? "0", CultureInfo.InvariantCulture),
    Log = line => Console.Error.WriteLine(line),
});

static StreamDatasetRequest Request(Options o, bool labels)
{
    var request = new StreamDatasetRequest
    {
        Dataset = o.Require("dataset"),
        Split = o.Require("split"),
        BatchSize = uint.Parse(o.Get("batch-size") ?? "0", CultureInfo.InvariantCulture),
        Seed = ulong.Parse(o.Get("seed") ?? "0", CultureInfo.InvariantCulture),
        Epoch = uint.Parse(o.Get("epoch") ?? "0", CultureInfo.InvariantCulture),
        Shuffle = o.Flag("shuffle"),
        StartOffset = ulong.Parse(o.Get("start-offset") ?? "0", CultureInfo.InvariantCulture),
        IncludeLabels = labels,
    };
    request.Encoders.Add(o.Require("encoder"));
    return request;
}

static async Task<int> EpochAsync(Options o)
{
    var dir = o.Require("out");
    Directory.CreateDirectory(dir);
    using var client = Connect(o);
    await using var embeddings = File.Create(Path.Combine(dir, "embeddings.bin"));
    await using var indices = File.Create(Path.Combine(dir, "indices.bin"));
    await using var labels = File.Create(Path.Combine(dir, "labels.bin"));
    long items = 0;
    var pauseAfter = int.Parse(o.Get("pause-after") ?? "-1", CultureInfo.InvariantCulture);
    var batches = 0;
    EncoderEmbeddings? last = null;
    await foreach (var batch in client.StreamEpochAsync(Request(o, labels: true)))
    {
        if (batches++ == pauseAfter)
        {
            Console.WriteLine("paused");
            await Task.Delay(Timeout.Infinite);
        }

        last = batch.Results[0];
        embeddings.Write(last.Embeddings.Span);
        indices.Write(MemoryMarshal.AsBytes(batch.Indices.ToArray().AsSpan()));
        if (batch.Labels?.Groups is { } g)
            labels.Write(MemoryMarshal.AsBytes(g.GroupIds.ToArray().AsSpan()));
        items += batch.Indices.Count;
    }

    Console.WriteLine(JsonSerializer.Serialize(new
    {
        items,
        dim = last?.Dim ?? 0,
        dtype = (last?.Dtype ?? DType.Unspecified).ToString(),
        fingerprint = last?.Fingerprint ?? "",
    }));
    return 0;
}

static int Hash(Options o)
{
    FeatureBatch features;
    if (o.Get("texts") is { } textsPath)
    {
        features = KeyExtractors.Texts(JsonSerializer.Deserialize<string[]>(File.ReadAllText(textsPath)) ?? []);
    }
    else
    {
        var data = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(o.Require("tensors")));
        var shape = o.Require("shape").Split('x').Select(d => long.Parse(d, CultureInfo.InvariantCulture)).ToArray();
        features = KeyExtractors.Tensors(data, shape);
    }

    var hashes = KeyExtractors.Content(features).Content.Hashes.Span;
    for (var i = 0; i < hashes.Length; i += 16)
        Console.WriteLine(Convert.ToHexStringLower(hashes.Slice(i, 16)));
    return 0;
}

static async Task<int> BenchAsync(Options o)
{
    using var client = Connect(o);
    var request = Request(o, labels: o.Flag("labels"));
    var seconds = double.Parse(o.Require("seconds"), CultureInfo.InvariantCulture);
    var warmup = double.Parse(o.Get("warmup") ?? "2", CultureInfo.InvariantCulture);

    // Whole epochs until the time is up: items and bytes counted over the measured epochs only.
    async Task<(long Items, long Bytes, int Epochs, double Seconds)> RunAsync(double limit)
    {
        var clock = Stopwatch.StartNew();
        long items = 0, bytes = 0;
        var epochs = 0;
        while (clock.Elapsed.TotalSeconds < limit)
        {
            request.Epoch = (uint)epochs;
            await foreach (var batch in client.StreamEpochPooledAsync(request))
            {
                items += batch.Indices.Count;
                bytes += batch.Results[0].Embeddings.Length;
            }

            epochs++;
        }

        return (items, bytes, epochs, clock.Elapsed.TotalSeconds);
    }

    await RunAsync(warmup);
    var cpu = Process.GetCurrentProcess().TotalProcessorTime;
    var (n, b, e, s) = await RunAsync(seconds);
    var cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
    Console.WriteLine(JsonSerializer.Serialize(new { items = n, bytes = b, epochs = e, seconds = s, cpu_seconds = cpuSeconds, items_per_second = n / s }));
    return 0;
}

/// <summary><c>command --name value ... --flag</c>.</summary>
internal sealed class Options
{
    private static readonly HashSet<string> Flags = ["shuffle", "labels"];
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    public string Command { get; private set; } = "";

    public static Options Parse(string[] args)
    {
        var o = new Options { Command = args.Length > 0 ? args[0] : "" };
        for (var i = 1; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
                throw new ArgumentException($"unexpected '{args[i]}'");
            var name = args[i][2..];
            if (Flags.Contains(name))
                o._flags.Add(name);
            else if (i + 1 < args.Length)
                o._values[name] = args[++i];
            else
                throw new ArgumentException($"--{name} needs a value");
        }

        return o;
    }

    public string? Get(string name) => _values.GetValueOrDefault(name);

    public string Require(string name) => Get(name) ?? throw new ArgumentException($"--{name} is required");

    public bool Flag(string name) => _flags.Contains(name);
}
