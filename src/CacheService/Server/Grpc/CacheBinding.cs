using EmbedCache.Contract.V1;
using ServiceDescriptor = Google.Protobuf.Reflection.ServiceDescriptor;
using Grpc.Core;

namespace EmbedCache.Server.Grpc;

/// <summary>
/// The contract's two services, bound the way generated code binds them but with request marshallers of our
/// own. The generated marshaller parses a unary request before any interceptor runs, so a body that is not
/// protobuf was answered UNKNOWN ("Exception was thrown by handler"); these answer INVALID_ARGUMENT naming the
/// message, for unary and streaming calls alike. grpc-dotnet finds each binding through the
/// <see cref="BindServiceMethodAttribute"/> on the base class, and server reflection finds the service
/// descriptor on the class that declares it, exactly as for generated code.
/// </summary>
internal static class CacheBinding
{
    private const string Service = "embedcache.v1.EmbeddingCache";

    public static ServiceDescriptor Descriptor => EmbedcacheReflection.Descriptor.Services.Single(s => s.Name == "EmbeddingCache");

    /// <summary>Base class of the trainer-API implementation.</summary>
    [BindServiceMethod(typeof(CacheBinding), nameof(BindService))]
    public abstract class Base
    {
        public abstract Task<LookupResponse> Lookup(LookupRequest request, ServerCallContext context);

        public abstract Task GetEmbeddings(IAsyncStreamReader<LookupRequest> requestStream, IServerStreamWriter<LookupResponse> responseStream, ServerCallContext context);

        public abstract Task StreamDataset(StreamDatasetRequest request, IServerStreamWriter<DatasetBatch> responseStream, ServerCallContext context);

        public abstract Task<ListEncodersResponse> ListEncoders(ListEncodersRequest request, ServerCallContext context);

        public abstract Task StreamDatasetShared(IAsyncStreamReader<SharedStreamMessage> requestStream, IServerStreamWriter<SharedStreamEvent> responseStream, ServerCallContext context);
    }

    public static void BindService(ServiceBinderBase binder, Base? service)
    {
        ArgumentNullException.ThrowIfNull(binder);
        binder.AddMethod(Strict.Method(MethodType.Unary, Service, "Lookup", LookupRequest.Parser, LookupResponse.Parser), (UnaryServerMethod<LookupRequest, LookupResponse>?)null);
        binder.AddMethod(Strict.Method(MethodType.DuplexStreaming, Service, "GetEmbeddings", LookupRequest.Parser, LookupResponse.Parser), (DuplexStreamingServerMethod<LookupRequest, LookupResponse>?)null);
        binder.AddMethod(Strict.Method(MethodType.ServerStreaming, Service, "StreamDataset", StreamDatasetRequest.Parser, DatasetBatch.Parser), (ServerStreamingServerMethod<StreamDatasetRequest, DatasetBatch>?)null);
        binder.AddMethod(Strict.Method(MethodType.Unary, Service, "ListEncoders", ListEncodersRequest.Parser, ListEncodersResponse.Parser), (UnaryServerMethod<ListEncodersRequest, ListEncodersResponse>?)null);
        binder.AddMethod(Strict.Method(MethodType.DuplexStreaming, Service, "StreamDatasetShared", SharedStreamMessage.Parser, SharedStreamEvent.Parser), (DuplexStreamingServerMethod<SharedStreamMessage, SharedStreamEvent>?)null);
    }
}
