using System.Net;
using System.Net.Sockets;
using EmbedCache.Server.Configuration;
using EmbedCache.Server.Grpc;
using EmbedCache.Server.Hosting.Security;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.Options;
using Prometheus;
using Serilog;

namespace EmbedCache.Server.Hosting;

/// <summary>Builds and runs the service. Tests build it the same way, with overrides.</summary>
public static class EmbedCacheHost
{
    /// <summary>Runs until Ctrl+C / SIGTERM. Returns the process exit code.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        WebApplication? app = null;
        try
        {
            app = Build(args);
            var engine = app.Services.GetRequiredService<EngineHost>();
            await app.RunAsync();
            // Start-up runs beside the open listeners (EngineHost); when it fails it stops the host.
            if (engine.StartupFailure is { } failure)
                throw failure;
            return 0;
        }
        catch (OptionsValidationException e)
        {
            await Console.Error.WriteLineAsync($"EmbedCache: invalid configuration: {string.Join("; ", e.Failures)}");
            return 2;
        }
        catch (StartupException e)
        {
            await Console.Error.WriteLineAsync($"EmbedCache: {e.Message}");
            return 2;
        }
        catch (IOException e) when (e.InnerException is AddressInUseException)
        {
            await Console.Error.WriteLineAsync($"EmbedCache: cannot listen: {e.Message}");
            return 3;
        }
        finally
        {
            if (app is not null)
                await app.DisposeAsync();
        }
    }

    /// <summary>
    /// Builds the application. <paramref name="configure"/> runs after the standard wiring,
    /// so tests can add in-memory configuration or replace services.
    /// </summary>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            ContentRootPath = AppContext.BaseDirectory,
        });

        builder.AddEmbedCacheConfigFile(args);
        builder.AddEmbedCacheLogging();
        builder.AddEmbedCacheListeners();
        builder.AddEmbedCacheServices();
        builder.AddEmbedCacheSecurity();
        configure?.Invoke(builder);

        var app = builder.Build();
        app.MapEmbedCache();
        return app;
    }

    /// <summary>
    /// <c>--config &lt;file&gt;</c>: a JSON file that overrides appsettings.json and is itself
    /// overridden by environment variables and the command line.
    /// </summary>
    public static void AddEmbedCacheConfigFile(this WebApplicationBuilder builder, string[] args)
    {
        var path = ConfigFileArgument(args);
        if (path is null)
            return;
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
            throw new StartupException($"--config: file not found: {full}");

        var sources = builder.Configuration.Sources;
        var index = sources.Count;
        for (var i = 0; i < sources.Count; i++)
        {
            if (sources[i] is EnvironmentVariablesConfigurationSource { Prefix: null or "" })
            {
                index = i;
                break;
            }
        }

        try
        {
            var fileConfig = new ConfigurationBuilder().AddJsonFile(full, optional: false, reloadOnChange: false);
            sources.Insert(index, fileConfig.Sources[0]);
            // Touch the provider now so a malformed file is one clear line, not a stack trace later.
            _ = builder.Configuration.GetSection(EmbedCacheOptions.SectionName).GetChildren().ToList();
        }
        catch (InvalidDataException e)
        {
            throw new StartupException($"--config: {full} is not valid JSON: {e.InnerException?.Message ?? e.Message}");
        }
        catch (FormatException e)
        {
            throw new StartupException($"--config: {full} is not valid JSON: {e.Message}");
        }
    }

    internal static string? ConfigFileArgument(string[] args)
    {
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--config")
            {
                if (i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                    throw new StartupException("--config needs a file path");
                return args[i + 1];
            }

            if (args[i].StartsWith("--config=", StringComparison.Ordinal))
                return args[i]["--config=".Length..];
        }

        return null;
    }

    public static void AddEmbedCacheLogging(this WebApplicationBuilder builder)
    {
        var json = string.Equals(builder.Configuration[$"{EmbedCacheOptions.SectionName}:LogFormat"], "json", StringComparison.OrdinalIgnoreCase);
        builder.Services.AddSerilog((services, lc) =>
        {
            lc.MinimumLevel.Information()
                .MinimumLevel.Override("Microsoft.AspNetCore", Serilog.Events.LogEventLevel.Warning)
                .MinimumLevel.Override("Microsoft.Hosting.Lifetime", Serilog.Events.LogEventLevel.Warning)
                .MinimumLevel.Override("Grpc", Serilog.Events.LogEventLevel.Warning)
                // Every probe during start-up would log an error ("status Unhealthy"); the engine logs its progress itself.
                .MinimumLevel.Override("Microsoft.Extensions.Diagnostics.HealthChecks", Serilog.Events.LogEventLevel.Fatal)
                // A start-up error is reported once, as one line on stderr (Program), not again with a stack trace.
                .Filter.ByExcluding(e => e.Exception is StartupException)
                .ReadFrom.Configuration(builder.Configuration)
                .Enrich.FromLogContext()
                // Sinks registered as services (ILogEventSink) get the log too: a test reads it that way.
                .ReadFrom.Services(services);
            if (json)
                lc.WriteTo.Console(new Serilog.Formatting.Compact.CompactJsonFormatter());
            else
                lc.WriteTo.Console(outputTemplate: "[{Timestamp:HH:mm:ss} {Level:u3}] {SourceContext}: {Message:lj}{NewLine}{Exception}");
        }, preserveStaticLogger: true); // each host logs through its own logger, not the process-wide Log.Logger (tests run several)
    }

    /// <summary>
    /// Kestrel listeners: gRPC (HTTP/2 cleartext, or TLS), HTTP/1.1 for health, metrics and status, and, with
    /// EmbedCache:UnixSocketPath, gRPC on a Unix domain socket (HTTP/2 without TLS: it is local; file modes guard it).
    /// </summary>
    public static void AddEmbedCacheListeners(this WebApplicationBuilder builder)
    {
        var endpoints = new ServiceEndpoints();
        builder.Services.AddSingleton(endpoints);
        builder.Services.AddSingleton<UnixSocketListener>();
        // Kestrel binds every endpoint through this hook; the Unix socket is bound by UnixSocketListener, which
        // sets its mode and group before the path appears (see there).
        builder.Services.AddOptions<SocketTransportOptions>().Configure<IServiceProvider>((sockets, services) =>
        {
            var bindDefault = sockets.CreateBoundListenSocket;
            sockets.CreateBoundListenSocket = endpoint =>
                endpoint is UnixDomainSocketEndPoint unix && services.GetRequiredService<UnixSocketListener>() is var listener && listener.Owns(unix)
                    ? listener.Bind()
                    : bindDefault(endpoint);
        });
        builder.WebHost.ConfigureKestrel((context, kestrel) =>
        {
            var options = kestrel.ApplicationServices.GetRequiredService<IOptions<EmbedCacheOptions>>().Value;
            var address = options.ListenAddress switch
            {
                "*" => IPAddress.Any,
                "localhost" => IPAddress.Loopback,
                var a => IPAddress.Parse(a),
            };

            ListenOptions? grpc = null, http = null;
            kestrel.Listen(address, options.GrpcPort, o =>
            {
                o.Protocols = HttpProtocols.Http2;
                o.UseEmbedCacheTls(options, endpoints);
                grpc = o;
            });
            kestrel.Listen(address, options.HttpPort, o =>
            {
                o.Protocols = HttpProtocols.Http1;
                http = o;
            });
            endpoints.Set(grpc!, http!);
            // Last: when it cannot be bound (a live socket at the path), Kestrel releases the ports bound before it.
            if (UnixSocketListener.FullPath(options) is { } unixSocket)
            {
                kestrel.ListenUnixSocket(unixSocket, o => o.Protocols = HttpProtocols.Http2);
                endpoints.UnixSocketPath = unixSocket;
            }
        });
    }

    public static void AddEmbedCacheServices(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<IValidateOptions<EmbedCacheOptions>, EmbedCacheOptionsValidator>();
        builder.Services.AddOptions<EmbedCacheOptions>()
            .BindConfiguration(EmbedCacheOptions.SectionName)
            .ValidateOnStart();

        builder.Services.AddSingleton<EngineHost>();
        builder.Services.AddSingleton<ServiceMetrics>();
        builder.Services.AddSingleton<SharedStreams>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<EngineHost>());

        // The handlers take the engine's parts, which exist once it has started. The starting gate lets no contract
        // call through before that (nor once it stops), so these are built at the first call, from a ready engine.
        builder.Services.AddSingleton(sp => WithEngine<EmbeddingCacheService>(sp));
        builder.Services.AddSingleton(sp => WithEngine<CacheAdminService>(sp, sp.GetRequiredService<EngineHost>().StartedAt));

        builder.Services.AddGrpc(o =>
        {
            o.EnableDetailedErrors = false;
            o.Interceptors.Add<MetricsInterceptor>();
            o.AddEmbedCacheGuards();
            o.Interceptors.Add<StartingGateInterceptor>();
            o.Interceptors.Add<ErrorMappingInterceptor>();
        });
        builder.Services.AddOptions<global::Grpc.AspNetCore.Server.GrpcServiceOptions>()
            .Configure<IOptions<EmbedCacheOptions>>((grpc, cache) =>
            {
                grpc.MaxReceiveMessageSize = cache.Value.Limits.MaxReceiveMessageBytes;
                grpc.MaxSendMessageSize = null;
            });
        builder.Services.AddGrpcReflection();
        builder.Services.AddGrpcHealthChecks()
            .AddCheck<LifecycleHealthCheck>("lifecycle");
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(60));
        builder.Services.AddHostedService<StartupLog>();
    }

    /// <summary>A handler built with the engine's parts and <paramref name="more"/>; the rest of its constructor comes from the container.</summary>
    private static T WithEngine<T>(IServiceProvider services, params object[] more)
    {
        var host = services.GetRequiredService<EngineHost>();
        return ActivatorUtilities.CreateInstance<T>(services, [host.Engine, host.Jobs, .. more]);
    }

    public static void MapEmbedCache(this WebApplication app)
    {
        app.MapGrpcService<EmbeddingCacheService>();
        app.MapGrpcService<CacheAdminService>();
        app.MapGrpcHealthChecksService();
        app.MapGrpcReflectionService();
        app.UseEmbedCacheMetricsAuth();
        app.MapHealthChecks("/healthz", new Microsoft.AspNetCore.Diagnostics.HealthChecks.HealthCheckOptions { ResponseWriter = LifecycleHealthCheck.WriteAsync });
        app.MapMetrics("/metrics", app.Services.GetRequiredService<ServiceMetrics>().Registry);
        app.MapStatusPage();
    }
}

/// <summary>A start-up problem that is reported as one line and a non-zero exit code.</summary>
public sealed class StartupException(string message) : Exception(message);
