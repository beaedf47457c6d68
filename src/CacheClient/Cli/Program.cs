using EmbedCache.Cli;
using Grpc.Core;

try
{
    return await Commands.RunAsync(args, Console.Out, CancellationToken.None);
}
catch (UsageException e)
{
    await Console.Error.WriteLineAsync($"embedcache: {e.Message}");
    await Console.Error.WriteLineAsync(Commands.Usage);
    return 2;
}
catch (RpcException e)
{
    await Console.Error.WriteLineAsync($"embedcache: {e.StatusCode}: {e.Status.Detail}");
    return 1;
}
catch (HttpRequestException e)
{
    await Console.Error.WriteLineAsync($"embedcache: cannot reach the service: {e.Message}");
    return 1;
}
