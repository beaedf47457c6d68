using System.Diagnostics;
using EmbedCache.Server.Hosting;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace EmbedCache.Server.Grpc;

/// <summary>Times every call and counts its outcome (outermost, so errors are counted with their final code).</summary>
internal sealed class MetricsInterceptor(ServiceMetrics metrics) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        var start = Stopwatch.GetTimestamp();
        var code = StatusCode.OK;
        try
        {
            return await continuation(request, context);
        }
        catch (RpcException e)
        {
            code = e.StatusCode;
            throw;
        }
        finally
        {
            Observe(context, code, start);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var start = Stopwatch.GetTimestamp();
        var code = StatusCode.OK;
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (RpcException e)
        {
            code = e.StatusCode;
            throw;
        }
        finally
        {
            Observe(context, code, start);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var start = Stopwatch.GetTimestamp();
        var code = StatusCode.OK;
        try
        {
            await continuation(requestStream, responseStream, context);
        }
        catch (RpcException e)
        {
            code = e.StatusCode;
            throw;
        }
        finally
        {
            Observe(context, code, start);
        }
    }

    private void Observe(ServerCallContext context, StatusCode code, long start)
    {
        var method = context.Method;
        var slash = method.LastIndexOf('/');
        metrics.ObserveRequest(slash >= 0 ? method[(slash + 1)..] : method, code.ToString(), Stopwatch.GetElapsedTime(start).TotalSeconds);
    }
}
