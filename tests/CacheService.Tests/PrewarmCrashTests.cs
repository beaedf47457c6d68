using EmbedCache.CacheClient;
using EmbedCache.Contract.V1;
using EmbedCache.TestSupport;

namespace EmbedCache.CacheService.Tests;

/// <summary>The service killed with SIGKILL in the middle of a prewarm, restarted on the same SaveDir.</summary>
public sealed class PrewarmCrashTests
{
    private const int Items = 240;

    [Fact]
    public async Task PrewarmKilledMidway_ResumesAfterRestart_WithoutReencodingCommittedItems()
    {
        using var dir = new TempDirectory("crash");
        var data = Directory.CreateDirectory(dir.Combine("data", "texts")).FullName;
        var words = "cache frozen encoder epoch trainer embedding vector label split batch".Split(' ');
        await File.WriteAllLinesAsync(Path.Combine(data, "train.jsonl"), Enumerable.Range(0, Items).Select(i =>
            $"{{\"text\": \"{string.Join(' ', Enumerable.Range(0, 90).Select(j => words[(i * 7 + j * 3) % words.Length] + (j % 5 == 0 ? i.ToString(System.Globalization.CultureInfo.InvariantCulture) : "")))}\"}}"));
        await File.WriteAllTextAsync(Path.Combine(data, "dataset.json"), """{ "splits": { "train": "train.jsonl" } }""");
        string[] args =
        [
            "--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", $"--EmbedCache:SaveDir={dir.Combine("save")}",
            $"--EmbedCache:DataRoot={dir.Combine("data")}", "--EmbedCache:Jobs:CheckpointIntervalSeconds=1",
            // A full-length text encoder: slow enough on two cores to be killed halfway.
            "--EmbedCache:Encoders:text:Kind=random-minilm", "--EmbedCache:Encoders:text:MaxLength=128", "--EmbedCache:Encoders:text:Seed=7",
        ];
        var request = new PrewarmRequest { Dataset = "texts", BatchSize = 8, Workers = 1 };
        request.Encoders.Add("text");

        ulong committedBeforeKill;
        using (var first = ChildProcess.Start(ServiceDll, args))
        {
            using var client = new EmbedCacheClient((await first.WaitForListeningAsync()).Grpc);
            using var call = client.Admin.Prewarm(new PrewarmRequest(request) { Follow = true });
            PrewarmProgress progress = new();
            await Wait.UntilAsync(async () =>
            {
                Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None), "the prewarm ended before it was killed");
                progress = call.ResponseStream.Current;
                return progress.Committed > 0 && progress.Processed < progress.Total / 2;
            }, "a prewarm with committed items to kill");
            committedBeforeKill = progress.Committed;
            first.Kill();
            await first.WaitForExitAsync("the killed service to exit");
        }

        using var second = ChildProcess.Start(ServiceDll, args);
        using (var client = new EmbedCacheClient((await second.WaitForListeningAsync()).Grpc))
        {
            PrewarmProgress? resumed = null;
            await Wait.UntilAsync(async () =>
            {
                resumed = (await client.ListJobsAsync()).SingleOrDefault();
                return resumed is { State: JobState.Completed or JobState.Failed };
            }, "the resumed prewarm to finish", TimeSpan.FromMinutes(3));
            var stats = await client.GetStatsAsync();
            var stream = new StreamDatasetRequest { Dataset = "texts", Split = "train", BatchSize = 64 };
            stream.Encoders.Add("text");
            var streamed = 0;
            await foreach (var batch in client.StreamEpochAsync(stream))
                streamed += batch.Indices.Count;

            Assert.Equal(JobState.Completed, resumed!.State);
            var encodedAfterRestart = stats.Namespaces.Single(n => n.Encoder == "text").Encoded;
            Assert.True(encodedAfterRestart <= (ulong)Items - committedBeforeKill,
                $"{encodedAfterRestart} encoded after the restart, but {committedBeforeKill} of {Items} were committed before the kill");
            Assert.Equal((ulong)Items, resumed.Skipped + resumed.Encoded);
            Assert.Equal(Items, streamed);
        }

        second.Terminate();
        Assert.Equal(0, await second.WaitForExitAsync("the service to stop"));
    }

    [Fact]
    public async Task FinishedJobs_AreStillListed_AfterARestart_AsTheyEnded()
    {
        using var dir = new TempDirectory("jobs-restart");
        string[] args = ["--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", $"--EmbedCache:SaveDir={dir.Combine("save")}"];
        PrewarmProgress done = new();
        using (var first = ChildProcess.Start(ServiceDll, args))
        {
            using var client = new EmbedCacheClient((await first.WaitForListeningAsync()).Grpc);
            await foreach (var p in client.PrewarmAsync(new PrewarmRequest { Dataset = "digits", Splits = { "train" }, Encoders = { "random-mlp" }, Follow = true }))
                done = p;
            first.Terminate();
            Assert.Equal(0, await first.WaitForExitAsync("the service to stop"));
        }

        Assert.Equal(JobState.Completed, done.State);
        Assert.StartsWith("completed in ", done.Message, StringComparison.Ordinal);

        using var second = ChildProcess.Start(ServiceDll, args);
        using (var client = new EmbedCacheClient((await second.WaitForListeningAsync()).Grpc))
        {
            var listed = Assert.Single(await client.ListJobsAsync());
            Assert.Equal(done.JobId, listed.JobId);
            Assert.Equal(JobState.Completed, listed.State);
            Assert.Equal(done.Message, listed.Message);
            Assert.Equal((done.Total, done.Processed, done.Encoded, done.Skipped, done.Committed), (listed.Total, listed.Processed, listed.Encoded, listed.Skipped, listed.Committed));
            Assert.Equal(["random-mlp"], listed.Encoders);
            Assert.Equal("digits", listed.Dataset);
        }

        second.Terminate();
        Assert.Equal(0, await second.WaitForExitAsync("the service to stop"));
    }

    private static string ServiceDll => RepoPaths.BuiltAssembly("CacheService", "EmbedCache.CacheService");

}
