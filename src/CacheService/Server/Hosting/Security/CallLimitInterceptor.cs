using System.Collections.Concurrent;
using System.Text;
using EmbedCache.Contract.V1;
using EmbedCache.Server.Configuration;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;

namespace EmbedCache.Server.Hosting.Security;

/// <summary>Open streaming calls per caller (API key, or peer address in anonymous mode).</summary>
public sealed class CallerStreamLimiter
{
    private readonly ConcurrentDictionary<string, StrongBox> _open = new(StringComparer.Ordinal);

    public bool TryEnter(string caller, int limit)
    {
        var box = _open.GetOrAdd(caller, _ => new StrongBox());
        if (Interlocked.Increment(ref box.Count) <= limit)
            return true;
        Interlocked.Decrement(ref box.Count);
        return false;
    }

    public void Exit(string caller)
    {
        if (_open.TryGetValue(caller, out var box))
            Interlocked.Decrement(ref box.Count);
    }

    public int Open(string caller) => _open.TryGetValue(caller, out var box) ? Volatile.Read(ref box.Count) : 0;

    private sealed class StrongBox
    {
        public int Count;
    }
}

/// <summary>
/// Limits with clear RESOURCE_EXHAUSTED messages: streaming calls open per caller
/// (<c>Limits:MaxConcurrentStreamsPerCaller</c>) and feature bytes per lookup request
/// (<c>Limits:MaxFeatureBytesPerRequest</c>). Keys per request and message size are enforced elsewhere.
/// </summary>
internal sealed class CallLimitInterceptor(CallerStreamLimiter limiter, IOptions<EmbedCacheOptions> options) : Interceptor
{
    private readonly EmbedCacheOptions.LimitSection _limits = options.Value.Limits;

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        CheckFeatures(request);
        return continuation(request, context);
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(
        TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var caller = Enter(context);
        try
        {
            await continuation(request, responseStream, context);
        }
        finally
        {
            Exit(caller);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context,
        DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var caller = Enter(context);
        try
        {
            await continuation(new CheckedReader<TRequest>(requestStream, this), responseStream, context);
        }
        finally
        {
            Exit(caller);
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(
        IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var caller = Enter(context);
        try
        {
            return await continuation(new CheckedReader<TRequest>(requestStream, this), context);
        }
        finally
        {
            Exit(caller);
        }
    }

    private string? Enter(ServerCallContext context)
    {
        if (context.Method.StartsWith("/grpc.", StringComparison.Ordinal))
            return null;
        var caller = context.UserState.TryGetValue(AuthInterceptor.CallerKey, out var c) && c is string s
            ? s : "peer:" + AuthInterceptor.PeerAddress(context.Peer);
        if (!limiter.TryEnter(caller, _limits.MaxConcurrentStreamsPerCaller))
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted,
                $"too many streaming calls open for this caller (limit Limits:MaxConcurrentStreamsPerCaller = {_limits.MaxConcurrentStreamsPerCaller}); finish or cancel one first"));
        }

        return caller;
    }

    private void Exit(string? caller)
    {
        if (caller is not null)
            limiter.Exit(caller);
    }

    private void CheckFeatures<TRequest>(TRequest request)
    {
        if (request is not LookupRequest { Features: { } features })
            return;
        long bytes = features.KindCase switch
        {
            FeatureBatch.KindOneofCase.Tensor => features.Tensor.Data.Length,
            FeatureBatch.KindOneofCase.Text => TextBytes(features.Text),
            _ => 0,
        };
        if (bytes > _limits.MaxFeatureBytesPerRequest)
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted,
                $"features: {bytes} bytes in one request; the limit is {_limits.MaxFeatureBytesPerRequest} (Limits:MaxFeatureBytesPerRequest): send smaller batches"));
        }
    }

    private static long TextBytes(TextFeatures text)
    {
        long total = 0;
        foreach (var t in text.Texts)
            total += Encoding.UTF8.GetByteCount(t);
        return total;
    }

    /// <summary>Checks each streamed request as it is read, so one oversized batch fails its stream with a clear status.</summary>
    private sealed class CheckedReader<T>(IAsyncStreamReader<T> inner, CallLimitInterceptor owner) : IAsyncStreamReader<T>
    {
        public T Current => inner.Current;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            try
            {
                if (!await inner.MoveNext(cancellationToken))
                    return false;
            }
            catch (Exception e) when (e is Google.Protobuf.InvalidProtocolBufferException or InvalidDataException)
            {
                // A frame that is not a message of this RPC: the client's fault, not an internal error.
                throw new RpcException(new Status(StatusCode.InvalidArgument, "the request stream holds a message that cannot be decoded"));
            }
            catch (Exception e) when (e is IOException { Message: var m } && m.StartsWith("Message too large", StringComparison.Ordinal)
                || e is RpcException { StatusCode: StatusCode.ResourceExhausted })
            {
                // grpc-dotnet's own answer ("Received message exceeds the maximum configured message size") names no setting.
                throw new RpcException(new Status(StatusCode.ResourceExhausted,
                    $"a streamed message is larger than the limit Limits:MaxReceiveMessageBytes = {owner._limits.MaxReceiveMessageBytes}"));
            }

            owner.CheckFeatures(inner.Current);
            return true;
        }
    }
}
