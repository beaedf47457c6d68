using EmbedCache.Server.Hosting;

// `healthcheck [url]` probes a running service's /healthz (container HEALTHCHECK: no curl needed).
// Without a URL it follows the container's EmbedCache__HttpPort, so a changed port needs no new probe.
if (args is ["healthcheck", ..])
    return await HealthProbe.RunAsync(args.Length > 1 ? args[1] : $"http://127.0.0.1:{Environment.GetEnvironmentVariable("EmbedCache__HttpPort") ?? "8080"}/healthz");

return await EmbedCacheHost.RunAsync(args);
