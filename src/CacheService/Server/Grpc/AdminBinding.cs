using EmbedCache.Contract.V1;
using ServiceDescriptor = Google.Protobuf.Reflection.ServiceDescriptor;
using Grpc.Core;

namespace EmbedCache.Server.Grpc;

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
