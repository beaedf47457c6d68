using System.Diagnostics;
using EmbedCache.Server.Grpc;
using Grpc.Core;

namespace EmbedCache.Server.Hosting;

/// <summary>Times every call and counts its outcome (outermost, so errors are counted with their final code).</summary>
internal sealed class MetricsInterceptor(ServiceMetrics metrics) : CallInterceptor
{
    protected override async Task<T> AroundAsync<T>(ServerCallContext context, Func<Task<T>> handler)
    {
        var start = Stopwatch.GetTimestamp();
        var code = StatusCode.OK;
        try
        {
            return await handler();
        }
        catch (RpcException e)
        {
            code = e.StatusCode;
            throw;
        }
        finally
        {
            var method = context.Method;
            var slash = method.LastIndexOf('/');
            metrics.ObserveRequest(slash >= 0 ? method[(slash + 1)..] : method, code.ToString(), Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
    }
}
