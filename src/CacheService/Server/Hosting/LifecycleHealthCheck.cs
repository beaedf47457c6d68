using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace EmbedCache.Server.Hosting;

/// <summary>
/// Serving once the engine is ready (the store recovered, the encoders loaded), not serving from the moment
/// shutdown begins, so load balancers and clients stop sending work before the store is checkpointed and closed.
/// The reason travels in the result: <c>/healthz</c> answers 503 with it; gRPC health says NOT_SERVING.
/// </summary>
internal sealed class LifecycleHealthCheck(IHostApplicationLifetime lifetime, EngineHost engine) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var result = lifetime.ApplicationStopping.IsCancellationRequested
            ? HealthCheckResult.Unhealthy("shutting down")
            : engine.Unavailable is { } reason
                ? HealthCheckResult.Unhealthy(reason)
                : lifetime.ApplicationStarted.IsCancellationRequested
                    ? HealthCheckResult.Healthy()
                    : HealthCheckResult.Unhealthy("starting");
        return Task.FromResult(result);
    }

    /// <summary><c>/healthz</c> body: <c>Healthy</c>, or <c>Unhealthy: reason</c> (status 503).</summary>
    public static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "text/plain; charset=utf-8";
        var reasons = report.Entries.Values.Where(e => e.Status != HealthStatus.Healthy && e.Description is not null).Select(e => e.Description);
        var text = report.Status == HealthStatus.Healthy ? "Healthy" : $"{report.Status}: {string.Join("; ", reasons)}";
        return context.Response.WriteAsync(text);
    }
}
