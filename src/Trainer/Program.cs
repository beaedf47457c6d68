using EmbedCache.Client;
using Grpc.Health.V1;

// Training itself arrives with the trainer work; today the trainer can check that the
// service it would train against is up.
var service = new Uri(Environment.GetEnvironmentVariable("EMBEDCACHE_SERVICE") ?? "http://127.0.0.1:50051");
for (var i = 0; i < args.Length - 1; i++)
{
    if (args[i] == "--service")
        service = new Uri(args[i + 1]);
}

if (args.Length == 0 || args[0] is "-h" or "--help" || args[0] != "check")
{
    Console.WriteLine("usage: EmbedCache.Trainer check [--service http://127.0.0.1:50051]");
    return args.Length == 0 || args[0] is "-h" or "--help" ? 0 : 2;
}

using var client = new EmbedCacheClient(service);
try
{
    var status = await client.CheckHealthAsync();
    Console.WriteLine($"{service}: {status}");
    return status == HealthCheckResponse.Types.ServingStatus.Serving ? 0 : 1;
}
catch (Grpc.Core.RpcException e)
{
    Console.Error.WriteLine($"{service}: {e.Status.StatusCode}: {e.Status.Detail}");
    return 1;
}
