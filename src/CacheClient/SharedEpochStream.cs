using System.Buffers;
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using EmbedCache.Contract.V1;
using Google.Protobuf;
using Grpc.Core;

namespace EmbedCache.CacheClient;

/// <summary>
/// The trainer's side of StreamDatasetShared: maps the service's ring read-only and turns each batch header into the
/// <see cref="DatasetBatch"/> StreamDataset would have sent, its embeddings a view of the ring (pooled) or a copy
/// (owned). Ring space is given back when the caller asks for the next batch (pooled) or at once (owned).
/// </summary>
internal static class SharedEpochStream
{
    public static async IAsyncEnumerable<DatasetBatch> ReadAsync(EmbeddingCache.EmbeddingCacheClient cache, StreamDatasetRequest request,
        long ringBytes, bool pooled, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var call = cache.StreamDatasetShared(cancellationToken: cancellationToken);
        await call.RequestStream.WriteAsync(new SharedStreamMessage { Open = new SharedStreamOpen { Request = request, RingBytes = (ulong)ringBytes } }, cancellationToken).ConfigureAwait(false);
        if (!await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false))
            throw new RpcException(new Status(StatusCode.Internal, "the service ended the shared-memory stream before naming its ring"));
        if (call.ResponseStream.Current.KindCase != SharedStreamEvent.KindOneofCase.Ring)
            throw new RpcException(new Status(StatusCode.Internal, "the service's first shared-memory event is not `ring`"));
        var ringFile = call.ResponseStream.Current.Ring;
        using var ring = RingMapping.Open(ringFile.Path, (long)ringFile.Size);
        await call.RequestStream.WriteAsync(new SharedStreamMessage { Ack = new SharedStreamAck { Released = 0 } }, cancellationToken).ConfigureAwait(false);

        ulong? release = null;
        var last = false;
        while (true)
        {
            if (release is { } position)
            {
                await AckAsync(call, position, complete: last, cancellationToken).ConfigureAwait(false);
                release = null;
            }

            SharedStreamEvent next;
            try
            {
                if (!await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false))
                    break;
                next = call.ResponseStream.Current;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && !cancellationToken.IsCancellationRequested)
            {
                // Not cancelled here: the service or the connection went away mid-stream.
                throw new RpcException(new Status(StatusCode.Unavailable, $"the shared-memory stream broke off: the service or its connection went away ({e.Status.Detail})", e));
            }

            var shared = next.Batch
                ?? throw new RpcException(new Status(StatusCode.Internal, "the service sent a shared-memory event that is not a batch"));
            var batch = shared.Batch;
            if (shared.Rows.Count != batch.Results.Count)
                throw new RpcException(new Status(StatusCode.Internal, $"a shared-memory batch names {shared.Rows.Count} spans for {batch.Results.Count} results"));
            ulong end = 0;
            for (var i = 0; i < shared.Rows.Count; i++)
            {
                var span = shared.Rows[i];
                var rows = ring.Slice(span.Position, span.Length);
                batch.Results[i].Embeddings = pooled ? UnsafeByteOperations.UnsafeWrap(rows) : ByteString.CopyFrom(rows.Span);
                end = Math.Max(end, span.Position + span.Length);
            }

            // The last batch: once it is released the trainer closes its side, and the service then ends the call.
            var elements = batch.Labels?.Pairs is { } pairs && pairs.AIndex.Count > 0 ? pairs.AIndex.Count : batch.Indices.Count;
            last = batch.Offset + (ulong)elements >= batch.Total;
            if (pooled)
                release = end; // the caller reads the ring until it asks for the next batch
            else
                await AckAsync(call, end, complete: last, cancellationToken).ConfigureAwait(false);

            yield return batch;
        }
    }

    /// <summary>
    /// Releases ring space up to <paramref name="position"/> (and closes the trainer's side after the last batch). A
    /// write that fails because the call is over is left to the next read, which reports the call's real status.
    /// </summary>
    private static async Task AckAsync(AsyncDuplexStreamingCall<SharedStreamMessage, SharedStreamEvent> call, ulong position, bool complete, CancellationToken cancellationToken)
    {
        try
        {
            await call.RequestStream.WriteAsync(new SharedStreamMessage { Ack = new SharedStreamAck { Released = position } }, cancellationToken).ConfigureAwait(false);
            if (complete)
                await call.RequestStream.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is RpcException or InvalidOperationException or IOException)
        {
        }
    }

    /// <summary>The ring, mapped read-only.</summary>
    private sealed unsafe class RingMapping : MemoryManager<byte>
    {
        private readonly MemoryMappedFile _file;
        private readonly MemoryMappedViewAccessor _view;
        private readonly byte* _pointer;
        private readonly long _size;

        private RingMapping(MemoryMappedFile file, MemoryMappedViewAccessor view, byte* pointer, long size)
        {
            _file = file;
            _view = view;
            _pointer = pointer;
            _size = size;
        }

        public static RingMapping Open(string path, long size)
        {
            if (size is <= 0 or > int.MaxValue)
                throw new RpcException(new Status(StatusCode.Internal, $"the service's shared-memory ring has an impossible size ({size})"));
            MemoryMappedFile file;
            try
            {
                file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new RpcException(new Status(StatusCode.PermissionDenied,
                    $"cannot map the service's shared-memory ring {path} ({e.Message}): the trainer must run as the service's user (or its socket group), on its host"));
            }

            try
            {
                var view = file.CreateViewAccessor(0, size, MemoryMappedFileAccess.Read);
                byte* pointer = null;
                view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
                return new RingMapping(file, view, pointer + view.PointerOffset, size);
            }
            catch
            {
                file.Dispose();
                throw;
            }
        }

        public ReadOnlyMemory<byte> Slice(ulong position, ulong length)
        {
            var offset = (long)(position % (ulong)_size);
            if (length > (ulong)(_size - offset))
                throw new RpcException(new Status(StatusCode.Internal, $"a shared-memory span ({position}, {length}) crosses the end of the {_size}-byte ring"));
            return Memory.Slice((int)offset, (int)length);
        }

        public override Span<byte> GetSpan() => new(_pointer, (int)_size);

        public override MemoryHandle Pin(int elementIndex = 0) => new(_pointer + elementIndex);

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
            if (!disposing)
                return;
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _file.Dispose();
        }
    }
}
