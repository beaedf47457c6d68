using EmbedCache.Contract.V1;
using Google.Protobuf;
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

/// <summary>The admin API's binding; see <see cref="CacheBinding"/>.</summary>
internal static class AdminBinding
{
    private const string Service = "embedcache.v1.CacheAdmin";

    public static ServiceDescriptor Descriptor => EmbedcacheReflection.Descriptor.Services.Single(s => s.Name == "CacheAdmin");

    /// <summary>Base class of the admin-API implementation.</summary>
    [BindServiceMethod(typeof(AdminBinding), nameof(BindService))]
    public abstract class Base
    {
        public abstract Task Prewarm(PrewarmRequest request, IServerStreamWriter<PrewarmProgress> responseStream, ServerCallContext context);

        public abstract Task<GetStatsResponse> GetStats(GetStatsRequest request, ServerCallContext context);

        public abstract Task<CheckpointResponse> Checkpoint(CheckpointRequest request, ServerCallContext context);

        public abstract Task<DropNamespaceResponse> DropNamespace(DropNamespaceRequest request, ServerCallContext context);

        public abstract Task<ListJobsResponse> ListJobs(ListJobsRequest request, ServerCallContext context);

        public abstract Task<CancelJobResponse> CancelJob(CancelJobRequest request, ServerCallContext context);
    }

    public static void BindService(ServiceBinderBase binder, Base? service)
    {
        ArgumentNullException.ThrowIfNull(binder);
        binder.AddMethod(Strict.Method(MethodType.ServerStreaming, Service, "Prewarm", PrewarmRequest.Parser, PrewarmProgress.Parser), (ServerStreamingServerMethod<PrewarmRequest, PrewarmProgress>?)null);
        binder.AddMethod(Strict.Method(MethodType.Unary, Service, "GetStats", GetStatsRequest.Parser, GetStatsResponse.Parser), (UnaryServerMethod<GetStatsRequest, GetStatsResponse>?)null);
        binder.AddMethod(Strict.Method(MethodType.Unary, Service, "Checkpoint", CheckpointRequest.Parser, CheckpointResponse.Parser), (UnaryServerMethod<CheckpointRequest, CheckpointResponse>?)null);
        binder.AddMethod(Strict.Method(MethodType.Unary, Service, "DropNamespace", DropNamespaceRequest.Parser, DropNamespaceResponse.Parser), (UnaryServerMethod<DropNamespaceRequest, DropNamespaceResponse>?)null);
        binder.AddMethod(Strict.Method(MethodType.Unary, Service, "ListJobs", ListJobsRequest.Parser, ListJobsResponse.Parser), (UnaryServerMethod<ListJobsRequest, ListJobsResponse>?)null);
        binder.AddMethod(Strict.Method(MethodType.Unary, Service, "CancelJob", CancelJobRequest.Parser, CancelJobResponse.Parser), (UnaryServerMethod<CancelJobRequest, CancelJobResponse>?)null);
    }
}

/// <summary>Protobuf marshallers whose request side fails with INVALID_ARGUMENT instead of an exception.</summary>
internal static class Strict
{
    public static Method<TRequest, TResponse> Method<TRequest, TResponse>(
        MethodType type, string service, string name, MessageParser<TRequest> request, MessageParser<TResponse> response)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse> =>
        new(type, service, name, Marshaller(request), Marshaller(response));

    private static Marshaller<T> Marshaller<T>(MessageParser<T> parser)
        where T : class, IMessage<T> =>
        new(
            (message, context) =>
            {
                context.SetPayloadLength(message.CalculateSize());
                message.WriteTo(context.GetBufferWriter());
                context.Complete();
            },
            context =>
            {
                try
                {
                    return parser.ParseFrom(context.PayloadAsReadOnlySequence());
                }
                catch (InvalidProtocolBufferException e)
                {
                    throw new RpcException(new Status(StatusCode.InvalidArgument,
                        $"the message is not a valid {typeof(T).Name} ({e.Message.TrimEnd('.')})"));
                }
            });
}
