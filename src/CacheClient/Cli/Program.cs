using EmbedCache.Cli;
using Grpc.Core;

// Exit codes: 2 for bad usage (System.CommandLine's errors and help on stderr), 1 for service errors.
try
{
    return await Commands.InvokeAsync(args, Console.Out, Console.Error, terminal: !Console.IsOutputRedirected, CancellationToken.None);
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
