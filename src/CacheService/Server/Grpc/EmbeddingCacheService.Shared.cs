using EmbedCache.Contract.V1;
using EmbedCache.Engine;
using EmbedCache.Engine.Caching;
using Grpc.Core;

namespace EmbedCache.Server.Grpc;

/// <summary>StreamDatasetShared: StreamDataset's batches with the rows in a shared-memory ring (see the proto).</summary>
internal sealed partial class EmbeddingCacheService
{
    public override async Task StreamDatasetShared(IAsyncStreamReader<SharedStreamMessage> requestStream, IServerStreamWriter<SharedStreamEvent> responseStream, ServerCallContext context)
    {
        var token = context.CancellationToken;
        if (!context.IsUnixSocket())
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                "the shared-memory stream is offered over the service's Unix socket only (EmbedCache:UnixSocketPath): use StreamDataset here"));
        }

        if (!await requestStream.MoveNext(token))
            return;
        if (requestStream.Current.KindCase != SharedStreamMessage.KindOneofCase.Open)
            throw new InvalidRequestException("open", "the first message must be `open`");
        var open = requestStream.Current.Open;
        var shared = _sharedMemory;
        var size = open.RingBytes == 0 ? shared.RingBytes : (long)Math.Min(open.RingBytes, long.MaxValue);
        if (size is < SharedRing.MinBytes or > SharedRing.MaxBytes)
            throw new InvalidRequestException("open.ring_bytes", $"must be between {SharedRing.MinBytes} and {SharedRing.MaxBytes} (was {open.RingBytes})");
        var streamRequest = await PrepareStreamAsync(open.Request ?? throw new InvalidRequestException("open.request", "missing"), token);

        var slowReader = TimeSpan.FromSeconds(shared.SlowReaderSeconds);
        using var ring = SharedRing.Create(shared.Directory, size, slowReader, _ringGroup.Value);
        using var tracked = sharedStreams.Track();
        await responseStream.WriteAsync(new SharedStreamEvent { Ring = new SharedRingFile { Path = ring.Path, Size = (ulong)ring.Size } }, token);

        // The trainer maps the file, then acknowledges position 0; from then on the file needs no name.
        using (var attach = CancellationTokenSource.CreateLinkedTokenSource(token))
        {
            attach.CancelAfter(slowReader);
            bool attached;
            try
            {
                attached = await requestStream.MoveNext(attach.Token);
            }
            catch (OperationCanceledException) when (!token.IsCancellationRequested)
            {
                throw new LimitExceededException($"the trainer did not map the shared-memory ring within {slowReader.TotalSeconds:0} s (SharedMemory:SlowReaderSeconds)");
            }

            if (!attached)
                return;
            if (requestStream.Current is not { KindCase: SharedStreamMessage.KindOneofCase.Ack, Ack.Released: 0 })
                throw new InvalidRequestException("ack", "after `ring`, the trainer acknowledges position 0 once it has mapped the ring");
        }

        ring.Unlink();
        using var done = CancellationTokenSource.CreateLinkedTokenSource(token);
        var acks = ReadAcksAsync(requestStream, ring, done);
        try
        {
            await foreach (var batch in engine.StreamSplitAsync(streamRequest with { Rows = ring }, done.Token))
            {
                using (batch)
                {
                    var message = new SharedBatch { Batch = ToMessage(batch, withRows: false) };
                    foreach (var r in batch.Results)
                        message.Rows.Add(new SharedSpan { Position = (ulong)r.Position, Length = (ulong)r.Length });
                    await responseStream.WriteAsync(new SharedStreamEvent { Batch = message }, done.Token);
                }
            }

            // The trainer closes its side once it has released the last batch; ending the call before that would reset
            // a stream it is still writing acks to. A trainer that never does is not waited for beyond the budget.
            await acks.WaitAsync(slowReader, token).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }
        catch (OperationCanceledException) when (acks.IsFaulted)
        {
            await acks; // the trainer's protocol error is the answer
        }
        finally
        {
            await done.CancelAsync();
            try
            {
                await acks;
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or InvalidRequestException or InvalidOperationException)
            {
                // already answered, or the trainer is gone
            }
        }
    }

    /// <summary>Frees ring space as the trainer acknowledges it; a bad ack ends the stream.</summary>
    private static async Task ReadAcksAsync(IAsyncStreamReader<SharedStreamMessage> requestStream, SharedRing ring, CancellationTokenSource done)
    {
        try
        {
            while (await requestStream.MoveNext(done.Token))
            {
                if (requestStream.Current.KindCase != SharedStreamMessage.KindOneofCase.Ack)
                    throw new InvalidRequestException("ack", "after `open`, only acks may be sent");
                ring.Release(requestStream.Current.Ack.Released);
            }
        }
        catch (InvalidRequestException)
        {
            await done.CancelAsync();
            throw;
        }
    }
}
