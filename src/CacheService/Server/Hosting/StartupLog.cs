namespace EmbedCache.Server.Hosting;

/// <summary>Logs where the service listens once Kestrel has bound (ports may have been 0), the Unix socket included.</summary>
internal sealed partial class StartupLog(
    IHostApplicationLifetime lifetime, ServiceEndpoints endpoints, ILogger<StartupLog> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        // The Unix socket, when there is one, is named last, so parsers of the line as it was before still read it.
        lifetime.ApplicationStarted.Register(() =>
        {
            if (endpoints.UnixSocketUri is { } unix)
                ListeningWithUnixSocket(logger, endpoints.GrpcUri, endpoints.HttpUri, unix);
            else
                Listening(logger, endpoints.GrpcUri, endpoints.HttpUri);
        });
        lifetime.ApplicationStopping.Register(() => Stopping(logger));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Information, Message = "EmbedCache listening: gRPC {GrpcUri}, HTTP {HttpUri}")]
    private static partial void Listening(ILogger logger, Uri grpcUri, Uri httpUri);

    [LoggerMessage(Level = LogLevel.Information, Message = "EmbedCache listening: gRPC {GrpcUri}, HTTP {HttpUri}, gRPC {UnixSocketUri}")]
    private static partial void ListeningWithUnixSocket(ILogger logger, Uri grpcUri, Uri httpUri, Uri unixSocketUri);

    [LoggerMessage(Level = LogLevel.Information, Message = "EmbedCache stopping")]
    private static partial void Stopping(ILogger logger);
}
