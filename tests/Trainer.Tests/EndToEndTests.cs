using EmbedCache.TestSupport;

namespace EmbedCache.Trainer.Tests;

/// <summary>
/// The case Quaterion cannot do: several training processes sharing one cache and its labels.
/// The built service and three trainer processes, on the shipped digits dataset: two over TCP (gRPC epochs), one on
/// the service's Unix socket (epochs through a shared-memory ring).
/// </summary>
public sealed class EndToEndTests
{
    /// <summary>Every trainer must reach this retrieval precision@1 on the validation split.</summary>
    private const double RequiredPrecisionAt1 = 0.95;

    [Fact]
    public async Task ThreeTrainerProcesses_ShareOneService_ReachThePrecision_AndReceiveIdenticalData()
    {
        using var dir = new TempDirectory("e2e");
        using var service = ChildProcess.Start(RepoPaths.BuiltAssembly("CacheService", "EmbedCache.CacheService"),
            ["--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", $"--EmbedCache:SaveDir={dir.Combine("save")}",
             $"--EmbedCache:UnixSocketPath={dir.Combine("s.sock")}", $"--EmbedCache:SharedMemory:Directory={dir.Path}"]);
        var address = (await service.WaitForListeningAsync()).Grpc.ToString();
        var trainerDll = RepoPaths.BuiltAssembly("Trainer", "EmbedCache.Trainer");
        string[] addresses = [address, address, "unix://" + dir.Combine("s.sock")];

        var trainers = Enumerable.Range(0, 3).Select(i => ChildProcess.Start(trainerDll,
            ["train", "--dataset", "digits", "--encoder", "random-mlp", "--service", addresses[i], "--epochs", "4", "--seed", "42",
             "--out", dir.Combine($"trainer{i}")])).ToList();
        try
        {
            var exits = await Task.WhenAll(trainers.Select((t, i) => t.WaitForExitAsync($"trainer {i} to finish", TimeSpan.FromMinutes(5))));
            for (var i = 0; i < trainers.Count; i++)
                Assert.True(exits[i] == 0, $"trainer {i} exited {exits[i]}:\n{trainers[i].Output}");
            // One line each says which path the epochs took.
            Assert.Contains("epoch streams: gRPC (the service at", trainers[0].Output, StringComparison.Ordinal);
            Assert.Contains("epoch streams: shared memory (the service is on this host (unix://", trainers[2].Output, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var t in trainers)
                t.Dispose();
        }

        var runs = Enumerable.Range(0, 3).Select(i => RunMetrics.Read(dir.Combine($"trainer{i}", RunMetrics.FileName))).ToList();
        foreach (var run in runs)
        {
            Assert.Equal("cached", run.Source);
            Assert.Equal(4, run.Epochs.Count);
            Assert.True(run.Epochs[^1].PrecisionAt1 >= RequiredPrecisionAt1,
                $"precision@1 {run.Epochs[^1].PrecisionAt1:0.000} is below {RequiredPrecisionAt1}");
            Assert.All(run.Epochs.Skip(1), e => Assert.Equal(1.0, e.HitRate));
            // Epoch 1 is a fill exactly when the prewarm this trainer followed encoded something; no --compare, no speedup.
            Assert.Equal(run.Fill.Encoded > 0, run.Epochs[0].Fill);
            Assert.Null(run.Speedups.CachedOverNoCache);
        }

        // The cache started empty: some trainer's epoch 1 paid for the encoding.
        Assert.Contains(runs, r => r.Epochs[0].Fill);

        // Same seed, same epochs: every process received the same order, labels and embedding bits, through shared
        // memory as through gRPC.
        for (var epoch = 0; epoch < 4; epoch++)
        {
            var digests = runs.Select(r => r.Epochs[epoch].DataDigest).ToList();
            Assert.All(digests, d => Assert.False(string.IsNullOrEmpty(d)));
            Assert.All(digests, d => Assert.Equal(digests[0], d));
        }

        Assert.NotEqual(runs[0].Epochs[0].DataDigest, runs[0].Epochs[1].DataDigest);
        Assert.Equal(runs[0].Baseline, runs[1].Baseline);
        Assert.Equal(runs[0].Baseline, runs[2].Baseline);

        service.Terminate();
        Assert.Equal(0, await service.WaitForExitAsync("the service to stop"));
    }
}

/// <summary>
/// The README's walk-through: a head trained on the pretrained all-MiniLM-L6-v2's cached embeddings of the
/// shipped fortunes dataset must retrieve better than those embeddings do by themselves.
/// </summary>
public sealed class PretrainedEndToEndTests
{
    [Fact]
    public async Task HeadOnAllMiniLmL6V2_OverFortunes_BeatsTheRawEmbeddings()
    {
        using var dir = new TempDirectory("e2e-pretrained");
        using var service = ChildProcess.Start(RepoPaths.BuiltAssembly("CacheService", "EmbedCache.CacheService"),
            ["--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", $"--EmbedCache:SaveDir={dir.Combine("save")}"]);
        var address = (await service.WaitForListeningAsync()).Grpc.ToString();

        using var trainer = ChildProcess.Start(RepoPaths.BuiltAssembly("Trainer", "EmbedCache.Trainer"),
            ["train", "--dataset", "fortunes", "--encoder", "all-minilm-l6-v2", "--service", address, "--epochs", "30", "--seed", "42",
             "--out", dir.Combine("run")]);
        var exit = await trainer.WaitForExitAsync("the trainer to finish", TimeSpan.FromMinutes(15));
        Assert.True(exit == 0, $"trainer exited {exit}:\n{trainer.Output}");

        var run = RunMetrics.Read(dir.Combine("run", RunMetrics.FileName));
        Assert.Equal((1959L, 30), (run.Fill.Encoded, run.Epochs.Count));
        var trained = run.Epochs[^1].PrecisionAt1;
        Assert.True(trained > run.Baseline.PrecisionAt1 + 0.05,
            $"trained p@1 {trained:0.0000} does not beat the raw embeddings' {run.Baseline.PrecisionAt1:0.0000} by 0.05:\n{trainer.Output}");

        service.Terminate();
        Assert.Equal(0, await service.WaitForExitAsync("the service to stop"));
    }
}
