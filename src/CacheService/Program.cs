using EmbedCache.Service.Hosting;

// `healthcheck [url]` probes a running service's /healthz (container HEALTHCHECK: no curl needed).
if (args is ["healthcheck", ..])
    return await HealthProbe.RunAsync(args.Length > 1 ? args[1] : "http://127.0.0.1:8080/healthz");

return await EmbedCacheHost.RunAsync(args);
