using EmbedCache.Client;
using EmbedCache.Trainer;
using Grpc.Core;
using Grpc.Health.V1;

// Trains a similarity head on embeddings served by EmbedCache; `check` is the health preflight alone.
try
{
    return args switch
    {
        [] or ["-h" or "--help" or "help", ..] => Help(),
        ["train", .. var rest] => await Train(CommandLine.ParseTrain(rest, Environment.GetEnvironmentVariable)),
        ["check", .. var rest] => await Check(rest),
        [var other, ..] => throw new UsageException($"unknown command '{other}' (train, check)"),
    };
}
catch (UsageException e)
{
    Console.Error.WriteLine($"error: {e.Message} (see --help)");
    return 2;
}
catch (TrainerException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
catch (RpcException e)
{
    Console.Error.WriteLine($"error: the service said {e.StatusCode}: {e.Status.Detail}");
    return 1;
}
catch (OperationCanceledException)
{
    Console.Error.WriteLine("cancelled");
    return 130;
}

static int Help()
{
    Console.WriteLine(CommandLine.Usage);
    return 0;
}

static async Task<int> Check(IReadOnlyList<string> args)
{
    var (o, _) = CommandLine.Parse(args, new HashSet<string>(StringComparer.Ordinal) { "service", "api-key" });
    var service = new Uri(o.GetValueOrDefault("service") ?? Environment.GetEnvironmentVariable("EMBEDCACHE_SERVICE") ?? "http://127.0.0.1:50051");
    using var client = new EmbedCacheClient(new EmbedCacheClientOptions { Address = service, ApiKey = o.GetValueOrDefault("api-key") ?? Environment.GetEnvironmentVariable("EMBEDCACHE_API_KEY") });
    return await Preflight(client, service) ? 0 : 1;
}

static async Task<bool> Preflight(EmbedCacheClient client, Uri service)
{
    try
    {
        var status = await client.CheckHealthAsync();
        Console.WriteLine($"{service}: {status}");
        return status == HealthCheckResponse.Types.ServingStatus.Serving;
    }
    catch (RpcException e)
    {
        Console.Error.WriteLine($"{service}: {e.Status.StatusCode}: {e.Status.Detail}");
        return false;
    }
}

static async Task<int> Train(TrainOptions options)
{
    using var cancel = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) =>
    {
        e.Cancel = true;
        cancel.Cancel();
    };

    if (options.NoCache)
    {
        await using var local = new LocalEmbeddingSource(options.DataRoot!, options.Dataset, options.Encoder);
        await new TrainingRun(options, local, ConsoleProgress.ForConsole()).RunAsync(cancel.Token);
        return 0;
    }

    using var client = new EmbedCacheClient(new EmbedCacheClientOptions { Address = options.Service, ApiKey = options.ApiKey });
    if (!await Preflight(client, options.Service))
        return 1;
    await using var source = new CachedEmbeddingSource(client, options.Dataset, options.Encoder);
    await new TrainingRun(options, source, ConsoleProgress.ForConsole()).RunAsync(cancel.Token);
    return 0;
}
