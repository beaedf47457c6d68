using EmbedCache.TestSupport;
using FASTER.core;

namespace EmbedCache.Engine.Tests;

/// <summary>FASTER runs here: a value survives checkpoint, dispose and recovery on disk.</summary>
public sealed class FasterFoundationTests
{
    [Fact]
    public async Task Value_SurvivesCheckpointDisposeAndRecovery()
    {
        using var dir = new TempDirectory("faster");
        var expected = Enumerable.Range(0, 1536).Select(i => (byte)(i * 7)).ToArray();
        var key = "positional:demo/train/42"u8.ToArray();

        using (var store = Open(dir.Path, out var device))
        {
            using (var session = store.For(new SpanByteFunctions_ByteArrayOutput<Empty>()).NewSession<SpanByteFunctions_ByteArrayOutput<Empty>>())
                session.Upsert(key.AsSpan(), expected.AsSpan());

            var (ok, _) = await store.TakeHybridLogCheckpointAsync(CheckpointType.FoldOver);
            Assert.True(ok, "checkpoint did not complete");
            device.Dispose();
        }

        using (var store = Open(dir.Path, out var device))
        {
            store.Recover();
            using var session = store.For(new SpanByteFunctions_ByteArrayOutput<Empty>()).NewSession<SpanByteFunctions_ByteArrayOutput<Empty>>();
            var status = ReadKey(session, key, out var actual);
            Assert.True(status.Found, $"recovered store lost the key (status {status})");
            Assert.Equal(expected, actual);
            device.Dispose();
        }
    }

    private static unsafe Status ReadKey(ClientSession<SpanByte, SpanByte, SpanByte, byte[], Empty, SpanByteFunctions_ByteArrayOutput<Empty>> session, byte[] key, out byte[] value)
    {
        Status status;
        fixed (byte* k = key)
            status = session.Read(SpanByte.FromPointer(k, key.Length), out value!);
        if (status.IsPending)
        {
            session.CompletePendingWithOutputs(out var outputs, wait: true);
            using (outputs)
            {
                Assert.True(outputs.Next());
                status = outputs.Current.Status;
                value = outputs.Current.Output;
            }
        }

        return status;
    }

    private static FasterKV<SpanByte, SpanByte> Open(string dir, out IDevice device)
    {
        device = Devices.CreateLogDevice(Path.Combine(dir, "log", "hlog.log"));
        return new FasterKV<SpanByte, SpanByte>(
            size: 1L << 10,
            logSettings: new LogSettings { LogDevice = device, MemorySizeBits = 20, PageSizeBits = 14 },
            checkpointSettings: new CheckpointSettings { CheckpointDir = Path.Combine(dir, "checkpoints") });
    }
}
