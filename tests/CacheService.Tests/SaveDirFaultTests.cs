using System.Diagnostics;
using System.Text.Json;
using EmbedCache.Contract.V1;
using EmbedCache.TestSupport;
using Grpc.Core;
using Grpc.Net.Client;

namespace EmbedCache.CacheService.Tests;

/// <summary>The SaveDir going bad under the service: damaged checkpoint files, a read-only or full file system.</summary>
public sealed class SaveDirFaultTests
{
    private const int TrainItems = 1438;

    private static string ServiceDll => RepoPaths.BuiltAssembly("CacheService", "EmbedCache.CacheService");

    [Fact]
    public async Task DamagedCheckpointFiles_RefuseToStartWithOneLine_AndMoveAsideRecoversToAnEmptyStore()
    {
        using var dir = new TempDirectory("damaged");
        var save = dir.Combine("save");
        string[] args = ["--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", $"--EmbedCache:SaveDir={save}"];
        using (var first = ChildProcess.Start(ServiceDll, args))
        {
            using var channel = GrpcChannel.ForAddress((await first.WaitForListeningAsync()).Grpc);
            var fill = new PrewarmRequest { Dataset = "digits", BatchSize = 128, Workers = 2, Splits = { "train" }, Encoders = { "random-mlp" } };
            Assert.Equal(JobState.Completed, (await Contract.PrewarmToEndAsync(new Contract(channel).Admin, fill))[^1].State);
            first.Terminate();
            Assert.Equal(0, await first.WaitForExitAsync("the service to stop"));
        }

        // Overwrite every file of the cpu store's last checkpoint with garbage of the same length.
        var damaged = 0;
        foreach (var file in Directory.EnumerateFiles(Path.Combine(save, "cpu", "checkpoints"), "*", SearchOption.AllDirectories))
        {
            var bytes = new byte[new FileInfo(file).Length];
            new Random(damaged).NextBytes(bytes);
            await File.WriteAllBytesAsync(file, bytes);
            damaged++;
        }

        Assert.True(damaged > 0, "the cpu store has checkpoint files to damage");
        using (var refused = ChildProcess.Start(ServiceDll, args))
        {
            Assert.Equal(2, await refused.WaitForExitAsync("the service to refuse the damaged SaveDir"));
            var line = Assert.Single(refused.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains("is corrupt", line, StringComparison.Ordinal);
            Assert.Contains(save, line, StringComparison.Ordinal);
        }

        // The documented recovery: EmbedCache:Store:MoveAsideIncompatibleSaveDir=true keeps the damaged copy and starts empty.
        using var recovered = ChildProcess.Start(ServiceDll, [.. args, "--EmbedCache:Store:MoveAsideIncompatibleSaveDir=true"]);
        using (var channel = GrpcChannel.ForAddress((await recovered.WaitForListeningAsync()).Grpc))
        {
            var stats = await new Contract(channel).Admin.GetStatsAsync(new GetStatsRequest());
            Assert.All(stats.Namespaces, n => Assert.Equal(0ul, n.Items));
        }

        Assert.Single(Directory.GetDirectories(dir.Path, "save.moved-*"));
        recovered.Terminate();
        Assert.Equal(0, await recovered.WaitForExitAsync("the recovered service to stop"));
    }

    /// <remarks>
    /// A read-only remount of a live SaveDir is refused by Linux while the store holds its files open for writing
    /// ("mount point is busy"), so the read-only case the service can meet is at start-up; a full disk is what
    /// happens under a running service, and that is tested here with a small tmpfs filled to the last byte.
    /// </remarks>
    [MountFact]
    public async Task ReadOnlySaveDir_RefusesToStartWithOneLine_AndLeavesItsFilesUntouched()
    {
        using var dir = new TempDirectory("readonly");
        var save = dir.Combine("save");
        await using (var service = await InProcessService.StartAsync(save))
        {
            var fill = new PrewarmRequest { Dataset = "digits", BatchSize = 256, Workers = 1, Splits = { "val" }, Encoders = { "random-mlp" } };
            Assert.Equal(JobState.Completed, (await Contract.PrewarmToEndAsync(new Contract(service.Channel).Admin, fill))[^1].State);
        }

        var before = Snapshot(save);
        var mount = Directory.CreateDirectory(dir.Combine("ro")).FullName;
        Run("mount", "--bind", save, mount);
        try
        {
            Run("mount", "-o", "remount,ro,bind", mount);
            using var refused = ChildProcess.Start(ServiceDll, ["--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", $"--EmbedCache:SaveDir={mount}"]);
            Assert.Equal(2, await refused.WaitForExitAsync("the service to refuse the read-only SaveDir"));
            var line = Assert.Single(refused.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains($"SaveDir '{mount}' cannot be written (Read-only file system)", line, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", refused.Output, StringComparison.Ordinal);
        }
        finally
        {
            Run("umount", "-l", mount);
        }

        Assert.Equal(before, Snapshot(save));
    }

    /// <summary>Every file under <paramref name="root"/> with its bytes' hash.</summary>
    private static string Snapshot(string root) => string.Join('\n', Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
        .Order(StringComparer.Ordinal)
        .Select(f => $"{Path.GetRelativePath(root, f)} {Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f)))}"));

    [MountFact]
    public async Task SaveDirFull_CheckpointFailsClearly_ServiceKeepsServing_RecoversWhenSpaceReturns_NothingCommittedIsLost()
    {
        using var dir = new TempDirectory("fullfs");
        var mount = Directory.CreateDirectory(dir.Combine("fs")).FullName;
        Run("mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", mount);
        try
        {
            var save = Path.Combine(mount, "save");
            const int dim = 64;
            var keys = Enumerable.Range(0, 64).Select(i => $"full-{i}").ToArray();
            byte[] before, written;
            await using (var service = await InProcessService.StartAsync(save))
            {
                var c = new Contract(service.Channel);
                var fill = new PrewarmRequest { Dataset = "digits", BatchSize = 128, Workers = 2, Splits = { "train" }, Encoders = { "random-mlp" } };
                Assert.Equal(JobState.Completed, (await Contract.PrewarmToEndAsync(c.Admin, fill))[^1].State);
                before = await ReadSplitAsync(c);

                var filler = Path.Combine(mount, "filler");
                await FillAsync(filler);
                var write = Contract.Custom("random-mlp", keys);
                write.Features = Contract.Vectors(dim, Enumerable.Range(0, keys.Length).Select(i => Contract.Vector(dim, i)).ToArray());
                var readThrough = await c.Cache.LookupAsync(write, deadline: DateTime.UtcNow.AddSeconds(20));
                written = readThrough.Results[0].Embeddings.ToByteArray();

                var checkpoint = await Assert.ThrowsAsync<RpcException>(() => c.Admin.CheckpointAsync(new CheckpointRequest(), deadline: DateTime.UtcNow.AddSeconds(20)).ResponseAsync);
                var served = await ReadSplitAsync(c);
                var health = (await new Grpc.Health.V1.Health.HealthClient(service.Channel).CheckAsync(new Grpc.Health.V1.HealthCheckRequest())).Status;
                var metrics = await service.Http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
                using var status = JsonDocument.Parse(await service.Http.GetStringAsync(new Uri("/api/status", UriKind.Relative)));

                Assert.Equal(StatusCode.Unavailable, checkpoint.StatusCode);
                Assert.Contains("No space left on device", checkpoint.Status.Detail, StringComparison.Ordinal);
                Assert.Contains("not committed", checkpoint.Status.Detail, StringComparison.Ordinal);
                Assert.Equal(before, served);
                Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, health);
                Assert.Matches(@"(?m)^embedcache_savedir_write_errors_total [1-9]", metrics);
                Assert.Matches(@"(?m)^embedcache_savedir_failing 1", metrics);
                Assert.True(status.RootElement.GetProperty("saveDir").GetProperty("failing").GetBoolean());

                // Space comes back: the retried log writes land, and the next checkpoint commits everything.
                File.Delete(filler);
                var recovered = await c.Admin.CheckpointAsync(new CheckpointRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
                Assert.False(string.IsNullOrEmpty(recovered.Token));
                Assert.Matches(@"(?m)^embedcache_savedir_failing 0", await service.Http.GetStringAsync(new Uri("/metrics", UriKind.Relative)));
            }

            // Everything committed is there after a restart, bit-identical, including what was written while the disk was full.
            await using var restarted = await InProcessService.StartAsync(save);
            var again = new Contract(restarted.Channel);
            Assert.Equal(before, await ReadSplitAsync(again));
            var lookup = await again.Cache.LookupAsync(Contract.Custom("random-mlp", keys));
            Assert.Equal(written, lookup.Results[0].Embeddings.ToByteArray());
            Assert.All(lookup.Results[0].Found.ToByteArray(), b => Assert.Equal(0xFF, b));
        }
        finally
        {
            Run("umount", "-l", mount);
        }
    }

    private static async Task FillAsync(string path)
    {
        var chunk = new byte[1 << 20];
        await using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.None);
        try
        {
            for (var i = 0; i < 1024; i++)
                await stream.WriteAsync(chunk);
        }
        catch (IOException)
        {
            // ENOSPC: the file system is full, which is the point.
        }

        var small = new byte[4096];
        try
        {
            for (var i = 0; i < 1024; i++)
                await stream.WriteAsync(small);
        }
        catch (IOException)
        {
        }
    }

    private static async Task<byte[]> ReadSplitAsync(Contract c)
    {
        var request = new StreamDatasetRequest { Dataset = "digits", Split = "train", BatchSize = 512, Encoders = { "random-mlp" } };
        using var call = c.Cache.StreamDataset(request);
        var all = new List<byte>();
        await foreach (var batch in call.ResponseStream.ReadAllAsync())
            all.AddRange(batch.Results[0].Embeddings.ToByteArray());
        return [.. all];
    }

    internal static void Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
            info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({p.ExitCode}): {err}");
    }

}

/// <summary>A test that mounts a tmpfs: skipped, saying why, where this process may not mount.</summary>
public sealed class MountFactAttribute : FactAttribute
{
    private static readonly string? Reason = Probe();

    public MountFactAttribute()
    {
        if (Reason is not null)
            Skip = Reason;
    }

    private static string? Probe()
    {
        if (!OperatingSystem.IsLinux())
            return "needs Linux tmpfs mounts";
        var probe = Path.Combine(Path.GetTempPath(), $"embedcache-mount-probe-{Environment.ProcessId}");
        Directory.CreateDirectory(probe);
        try
        {
            SaveDirFaultTests.Run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe);
            SaveDirFaultTests.Run("umount", probe);
            return null;
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return $"needs permission to mount a tmpfs (root or CAP_SYS_ADMIN): {e.Message.Split('\n')[0]}";
        }
        finally
        {
            Directory.Delete(probe);
        }
    }
}
