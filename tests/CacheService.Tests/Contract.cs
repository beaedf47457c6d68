using EmbedCache.Contract.V1;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace EmbedCache.CacheService.Tests;

/// <summary>Typed clients and request builders for the tests, over the generated contract.</summary>
internal sealed class Contract(GrpcChannel channel)
{
    public EmbeddingCache.EmbeddingCacheClient Cache { get; } = new(channel);

    public CacheAdmin.CacheAdminClient Admin { get; } = new(channel);

    public static LookupRequest Positional(string encoder, string dataset, string split, params ulong[] indices)
    {
        var request = new LookupRequest { Keys = new KeyBatch { Positional = new PositionalKeys { Dataset = dataset, Split = split } } };
        request.Encoders.Add(encoder);
        request.Keys.Positional.Indices.Add(indices);
        return request;
    }

    public static LookupRequest Custom(string encoder, params string[] keys)
    {
        var request = new LookupRequest { Keys = new KeyBatch { Custom = new CustomKeys() } };
        request.Encoders.Add(encoder);
        foreach (var k in keys)
            request.Keys.Custom.Keys.Add(ByteString.CopyFromUtf8(k));
        return request;
    }

    public static FeatureBatch Vectors(int length, params float[][] items)
    {
        var data = new float[items.Length * length];
        for (var i = 0; i < items.Length; i++)
            items[i].CopyTo(data, i * length);
        var tensor = new TensorFeatures { Data = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan())) };
        tensor.ItemShape.Add(length);
        return new FeatureBatch { Tensor = tensor };
    }

    public static float[] Vector(int length, int seed)
    {
        var v = new float[length];
        for (var i = 0; i < length; i++)
            v[i] = ((seed * 31 + i * 7) % 17) / 16f;
        return v;
    }

    public static FeatureBatch Texts(params string[] texts)
    {
        var t = new TextFeatures();
        t.Texts.Add(texts);
        return new FeatureBatch { Text = t };
    }

    public static bool IsFound(ByteString mask, int i) => EmbedCache.Engine.FoundMask.IsSet(mask.Span, i);

    /// <summary>The status a call ends with: OK, or its RpcException's code and detail.</summary>
    public static async Task<(StatusCode Code, string Detail)> StatusAndDetail(Func<Task> call)
    {
        try
        {
            await call();
            return (StatusCode.OK, "");
        }
        catch (RpcException e)
        {
            return (e.StatusCode, e.Status.Detail);
        }
    }

    public static async Task<List<PrewarmProgress>> PrewarmToEndAsync(CacheAdmin.CacheAdminClient admin, PrewarmRequest request)
    {
        request.Follow = true;
        using var call = admin.Prewarm(request);
        var all = new List<PrewarmProgress>();
        await foreach (var p in call.ResponseStream.ReadAllAsync())
            all.Add(p);
        return all;
    }

    public static async Task<StatusCode> StatusOf(Func<Task> call)
    {
        try
        {
            await call();
        }
        catch (RpcException e)
        {
            return e.StatusCode;
        }

        return StatusCode.OK;
    }
}
