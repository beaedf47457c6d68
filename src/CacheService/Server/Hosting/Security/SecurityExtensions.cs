using EmbedCache.Server.Configuration;
using Grpc.AspNetCore.Server;
using Microsoft.Extensions.Options;

namespace EmbedCache.Server.Hosting.Security;

/// <summary>Wiring for API keys, per-caller limits and the admin-only /metrics endpoint.</summary>
public static class SecurityExtensions
{
    public static void AddEmbedCacheSecurity(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton(sp => ApiKeySet.Load(sp.GetRequiredService<IOptions<EmbedCacheOptions>>().Value.Auth));
        builder.Services.AddSingleton<CallerStreamLimiter>();
        builder.WebHost.ConfigureKestrel((_, kestrel) =>
        {
            var options = kestrel.ApplicationServices.GetRequiredService<IOptions<EmbedCacheOptions>>().Value;
            kestrel.Limits.Http2.MaxStreamsPerConnection = options.Limits.MaxStreamsPerConnection;
        });
    }

    /// <summary>Auth first (an unauthenticated caller gets no further), then per-caller limits.</summary>
    public static void AddEmbedCacheGuards(this GrpcServiceOptions grpc)
    {
        grpc.Interceptors.Add<AuthInterceptor>();
        grpc.Interceptors.Add<CallLimitInterceptor>();
    }

    /// <summary>/metrics needs an admin key when keys are configured; /healthz and everything else stay open.</summary>
    public static void UseEmbedCacheMetricsAuth(this WebApplication app)
    {
        var keys = app.Services.GetRequiredService<ApiKeySet>();
        app.Use(async (context, next) =>
        {
            if (keys.Enabled && context.Request.Path.StartsWithSegments("/metrics", StringComparison.OrdinalIgnoreCase))
            {
                var token = ApiKeySet.BearerToken(context.Request.Headers.Authorization);
                var role = token is null ? CallerRole.None : keys.Authenticate(token, out _);
                if (role != CallerRole.Admin)
                {
                    context.Response.StatusCode = role == CallerRole.None ? StatusCodes.Status401Unauthorized : StatusCodes.Status403Forbidden;
                    if (role == CallerRole.None)
                        context.Response.Headers.WWWAuthenticate = "Bearer";
                    await context.Response.WriteAsync(role == CallerRole.None ? "send an admin key: authorization: Bearer <key>\n" : "/metrics needs an admin key\n");
                    return;
                }
            }

            await next(context);
        });
    }
}
