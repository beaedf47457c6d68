using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace EmbedCache.Service.Hosting;

/// <summary>
/// Serving once the host has started, not serving from the moment shutdown begins, so load
/// balancers and clients stop sending work before the store is checkpointed and closed.
/// </summary>
internal sealed class LifecycleHealthCheck(IHostApplicationLifetime lifetime) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var result = lifetime.ApplicationStopping.IsCancellationRequested
            ? HealthCheckResult.Unhealthy("shutting down")
            : lifetime.ApplicationStarted.IsCancellationRequested
                ? HealthCheckResult.Healthy()
                : HealthCheckResult.Unhealthy("starting");
        return Task.FromResult(result);
    }
}
