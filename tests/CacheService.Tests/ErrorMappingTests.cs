using System.Collections.Concurrent;
using EmbedCache.Contract.V1;
using EmbedCache.Engine;
using EmbedCache.Server.Grpc;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Serilog.Core;
using Serilog.Events;

namespace EmbedCache.CacheService.Tests;

/// <summary>
/// What a caller sees when a handler throws something no one anticipated: INTERNAL with an id that is in the log,
/// never a guess such as INVALID_ARGUMENT or "shutting down" — unless the service really is shutting down.
/// </summary>
public sealed class ErrorMappingTests
{
    [Fact]
    public void EveryErrorKind_HasAStatusOfItsOwn_NotInternal()
    {
        var codes = Enum.GetValues<ErrorKind>().Select(ErrorMapping.ToStatusCode).ToList();

        Assert.DoesNotContain(StatusCode.Internal, codes);
        Assert.DoesNotContain(StatusCode.Unknown, codes);
        Assert.Equal(codes.Count, codes.Distinct().Count());
    }

    [Theory]
    [InlineData(typeof(ArgumentException))]
    [InlineData(typeof(ObjectDisposedException))]
    public async Task AnUnexpectedExceptionFromAHandler_WhileTheServiceRuns_IsInternal_WithAnIdThatIsInTheLog(Type type)
    {
        // Neither is the caller's fault (INVALID_ARGUMENT) nor a shutdown (UNAVAILABLE) while the service runs.
        var bug = (Exception)Activator.CreateInstance(type, "SessionPool: a bug, not the caller's")!;
        await using var scene = await Scene.StartAsync();
        scene.Fault.Next = () => bug;

        var e = await Assert.ThrowsAsync<RpcException>(() => scene.ListEncodersAsync());

        Assert.Equal(StatusCode.Internal, e.StatusCode);
        Assert.DoesNotContain("SessionPool", e.Status.Detail, StringComparison.Ordinal);
        scene.Log.AssertInternalErrorLogged(e.Status.Detail, bug);
    }

    [Fact]
    public async Task AnObjectDisposedExceptionFromAHandler_OnceShutdownHasBegun_IsUnavailable()
    {
        await using var scene = await Scene.StartAsync();
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        scene.Fault.Entered = entered;
        scene.Fault.Release = release.Task;
        scene.Fault.Next = () => new ObjectDisposedException("EmbeddingStore");

        // The call is under way when shutdown begins; the store goes away under it.
        var call = scene.ListEncodersAsync();
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        scene.Lifetime.StopApplication();
        release.SetResult();
        var e = await Assert.ThrowsAsync<RpcException>(() => call);

        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Contains("shutting down", e.Status.Detail, StringComparison.Ordinal);
        Assert.Empty(scene.Log.InternalErrors());
    }

    /// <summary>A service whose handlers (ListEncoders) throw what the test says, with its log recorded.</summary>
    private sealed record Scene(InProcessService Service, FaultInterceptor Fault, LogRecorder Log) : IAsyncDisposable
    {
        public IHostApplicationLifetime Lifetime => Service.Services.GetRequiredService<IHostApplicationLifetime>();

        public static async Task<Scene> StartAsync()
        {
            var fault = new FaultInterceptor();
            var log = new LogRecorder();
            var service = await InProcessService.StartWithAsync(builder =>
            {
                builder.Services.AddSingleton<ILogEventSink>(log);
                builder.Services.AddSingleton(fault);
                // Added last, so it runs inside the service's own interceptors, where a handler would.
                builder.Services.AddGrpc(o => o.Interceptors.Add<FaultInterceptor>());
            }, null, "--EmbedCache:Store:MemoryOnly=true");
            return new Scene(service, fault, log);
        }

        public Task<ListEncodersResponse> ListEncodersAsync() =>
            new Contract(Service.Channel).Cache.ListEncodersAsync(new ListEncodersRequest()).ResponseAsync;

        public ValueTask DisposeAsync() => Service.DisposeAsync();
    }

    /// <summary>Throws, in place of the ListEncoders handler, the exception <see cref="Next"/> makes.</summary>
    private sealed class FaultInterceptor : Interceptor
    {
        public Func<Exception>? Next { get; set; }

        public TaskCompletionSource? Entered { get; set; }

        public Task Release { get; set; } = Task.CompletedTask;

        public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
            TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
        {
            if (Next is not { } fault || !context.Method.EndsWith("/ListEncoders", StringComparison.Ordinal))
                return await continuation(request, context);
            Entered?.TrySetResult();
            await Release;
            throw fault();
        }
    }

    /// <summary>The service's log events (Serilog reads sinks registered as services).</summary>
    private sealed class LogRecorder : ILogEventSink
    {
        private readonly ConcurrentQueue<LogEvent> _events = new();

        public void Emit(LogEvent logEvent) => _events.Enqueue(logEvent);

        public List<LogEvent> InternalErrors() =>
            [.. _events.Where(e => e.Level == LogEventLevel.Error && e.Properties.ContainsKey("ErrorId"))];

        /// <summary>The status detail names an id, and the log has that id with the exception behind it.</summary>
        public void AssertInternalErrorLogged(string detail, Exception expected)
        {
            var match = System.Text.RegularExpressions.Regex.Match(detail, "^internal error ([0-9a-f]{8}); see the service log$");
            Assert.True(match.Success, $"'{detail}' names no error id");
            var logged = Assert.Single(InternalErrors());
            Assert.Equal(match.Groups[1].Value, (logged.Properties["ErrorId"] as ScalarValue)?.Value);
            Assert.Same(expected, logged.Exception);
        }
    }
}
