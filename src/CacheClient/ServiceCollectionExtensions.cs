using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace EmbedCache.CacheClient;

/// <summary>Dependency-injection registration.</summary>
public static class ServiceCollectionExtensions
{
    /// <summary>Registers a shared <see cref="EmbedCacheClient"/> configured by <paramref name="configure"/>.</summary>
    public static IServiceCollection AddEmbedCacheClient(this IServiceCollection services, Action<EmbedCacheClientOptions>? configure = null)
    {
        var options = services.AddOptions<EmbedCacheClientOptions>();
        if (configure is not null)
            options.Configure(configure);
        services.TryAddSingleton(sp => new EmbedCacheClient(sp.GetRequiredService<IOptions<EmbedCacheClientOptions>>().Value));
        return services;
    }
}
