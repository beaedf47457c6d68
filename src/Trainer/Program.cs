using EmbedCache.CacheClient;
using EmbedCache.Trainer;
using Grpc.Core;
using Grpc.Health.V1;

// Trains a similarity head on embeddings served by EmbedCache; `check` is the health preflight alone.
var root = CommandLine.Create(Environment.GetEnvironmentVariable, Train, Check);
try
{
    return await CommandLine.InvokeAsync(root, args, Console.Out, Console.Error);
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

static async Task<int> Check(Uri service, string? apiKey, CancellationToken cancellationToken)
{
    using var client = new EmbedCacheClient(new EmbedCacheClientOptions { Address = service, ApiKey = apiKey });
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

// Ctrl+C cancels the token (System.CommandLine's handler): the run stops between batches.
static async Task<int> Train(TrainOptions options, CancellationToken cancellationToken)
{
    if (options.NoCache)
    {
        await using var local = new LocalEmbeddingSource(options.DataRoot!, options.Dataset, options.Encoder);
        await new TrainingRun(options, local, ConsoleProgress.ForConsole()).RunAsync(cancellationToken);
        return 0;
    }

    // The client says once which path epochs take: shared memory for a service on this host (unix://), else gRPC.
    using var client = new EmbedCacheClient(new EmbedCacheClientOptions { Address = options.Service, ApiKey = options.ApiKey, Log = Console.WriteLine });
    if (!await Preflight(client, options.Service))
        return 1;
    await using var source = new CachedEmbeddingSource(client, options.Dataset, options.Encoder);
    await new TrainingRun(options, source, ConsoleProgress.ForConsole()).RunAsync(cancellationToken);
    return 0;
}
