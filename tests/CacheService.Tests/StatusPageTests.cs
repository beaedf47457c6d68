using System.Net;
using System.Text.Json;
using EmbedCache.CacheClient;
using EmbedCache.Contract.V1;
using EmbedCache.TestSupport;

namespace EmbedCache.CacheService.Tests;

/// <summary>The status page at / and the /api/status document it polls.</summary>
public sealed class StatusPageTests
{
    private const string Mlp = "random-mlp";

    private static PrewarmRequest DigitsTrain()
    {
        var r = new PrewarmRequest { Dataset = "digits", BatchSize = 128, Workers = 2 };
        r.Splits.Add("train");
        r.Encoders.Add(Mlp);
        return r;
    }

    [Fact]
    public async Task ApiStatus_AfterAPrewarmAndLookups_ReportsEncodersTiersHitRateAndTheJob()
    {
        await using var service = await InProcessService.StartAsync();
        var contract = new Contract(service.Channel);
        var progress = await Contract.PrewarmToEndAsync(contract.Admin, DigitsTrain());
        await contract.Cache.LookupAsync(Contract.Positional(Mlp, "digits", "train", 0, 1, 2, 3));
        var fingerprint = (await contract.Cache.ListEncodersAsync(new ListEncodersRequest())).Encoders.Single(e => e.Name == Mlp).Fingerprint;

        using var doc = JsonDocument.Parse(await service.Http.GetStringAsync(new Uri("/api/status", UriKind.Relative)));
        var root = doc.RootElement;

        var mlp = root.GetProperty("encoders").EnumerateArray().Single(e => e.GetProperty("name").GetString() == Mlp);
        Assert.Equal(fingerprint, mlp.GetProperty("fingerprint").GetString());
        Assert.Equal(4, mlp.GetProperty("hits").GetInt64());
        Assert.Equal(1438, mlp.GetProperty("encoded").GetInt64());
        Assert.True(root.GetProperty("hitRate").GetDouble() > 0);
        var tier = root.GetProperty("tiers").EnumerateArray().Single(t => t.GetProperty("items").GetInt64() > 0);
        Assert.Equal(1438, tier.GetProperty("items").GetInt64());
        Assert.True(tier.GetProperty("memoryBytes").GetInt64() + tier.GetProperty("diskBytes").GetInt64() > 0);
        var job = root.GetProperty("jobs").EnumerateArray().Single();
        Assert.Equal(progress[^1].JobId, job.GetProperty("id").GetString());
        Assert.Equal("completed", job.GetProperty("state").GetString());
        Assert.Equal(job.GetProperty("total").GetInt64(), job.GetProperty("processed").GetInt64());
        Assert.True(root.GetProperty("lastCheckpoint").GetProperty("durationMs").GetDouble() > 0, "the fill's checkpoint reports its duration");
    }

    [Fact]
    public async Task Root_ServesTheStatusPageHtml()
    {
        await using var service = await InProcessService.StartAsync();

        using var response = await service.Http.GetAsync(new Uri("/", UriKind.Relative));
        var html = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("<title>EmbedCache status</title>", html, StringComparison.Ordinal);
        Assert.Contains("api/status", html, StringComparison.Ordinal);
    }

    [ChromiumFact]
    public async Task StatusPage_IdleInHeadlessChromiumAt1280x1000_LabelsTheThroughputAxisZeroToFour()
    {
        await using var service = await InProcessService.StartAsync();
        using var dir = new TempDirectory("status-page");

        var run = await ProgramRun.RunAsync("node",
            ["check-status-page.mjs", service.Endpoints.HttpUri.ToString(), dir.Combine("idle.png"), "--idle"],
            ChromiumFactAttribute.ScriptFolder, new Dictionary<string, string> { ["CHROMIUM_PATH"] = ChromiumFactAttribute.Chromium },
            TimeSpan.FromMinutes(2));

        // The script checks any axis (five distinct labels rising evenly from 0); idle, the labels are the smallest such.
        Assert.True(run.ExitCode == 0, run.ToString());
        using var seen = JsonDocument.Parse(run.Output.Trim().Split('\n')[^1]);
        Assert.Equal(["0", "1", "2", "3", "4"], seen.RootElement.GetProperty("axis").EnumerateArray().Select(l => l.GetString()));
    }

    [ChromiumFact]
    public async Task StatusPage_InHeadlessChromium_RendersEncodersTiersJobProgressAndAThroughputChart()
    {
        await using var service = await InProcessService.StartAsync();
        using var dir = new TempDirectory("status-page");
        var contract = new Contract(service.Channel);
        var progress = await Contract.PrewarmToEndAsync(contract.Admin, DigitsTrain());
        var jobId = progress[^1].JobId;
        var fingerprint = (await contract.Cache.ListEncodersAsync(new ListEncodersRequest())).Encoders.Single(e => e.Name == Mlp).Fingerprint;

        // Lookups run while the page watches, so its throughput chart has something to plot: paced (50 a
        // second), not flat out, so that Chromium and the tests running beside this one keep their share of the CPU.
        using var stop = new CancellationTokenSource();
        var lookups = 0;
        var traffic = Task.Run(async () =>
        {
            var indices = Enumerable.Range(0, 256).Select(i => (ulong)i).ToArray();
            using var pace = new PeriodicTimer(TimeSpan.FromMilliseconds(20));
            while (await pace.WaitForNextTickAsync(stop.Token))
            {
                await contract.Cache.LookupAsync(Contract.Positional(Mlp, "digits", "train", indices), cancellationToken: stop.Token);
                Interlocked.Increment(ref lookups);
            }
        });

        var screenshot = Environment.GetEnvironmentVariable("STATUS_PAGE_SCREENSHOT") ?? dir.Combine("status.png");
        ProgramRun.Result run;
        try
        {
            run = await ProgramRun.RunAsync("node",
                ["check-status-page.mjs", service.Endpoints.HttpUri.ToString(), screenshot, Mlp, fingerprint, jobId],
                ChromiumFactAttribute.ScriptFolder, new Dictionary<string, string> { ["CHROMIUM_PATH"] = ChromiumFactAttribute.Chromium },
                TimeSpan.FromMinutes(2));
        }
        finally
        {
            // A lookup that failed stopped the traffic: that, not the page, is then what went wrong.
            var trafficFailed = traffic.IsFaulted ? traffic.Exception.GetBaseException() : null;
            await stop.CancelAsync();
            try
            {
                await traffic;
            }
            catch (Exception e) when (e is OperationCanceledException || (e is Grpc.Core.RpcException && trafficFailed is null))
            {
            }
        }

        Assert.True(run.ExitCode == 0, $"{run}\n(lookups sent while the page watched: {lookups})");
        using var seen = JsonDocument.Parse(run.Output.Trim().Split('\n')[^1]);
        var row = seen.RootElement.GetProperty("encoders").EnumerateArray().Single(r => r[0].GetString() == Mlp);
        Assert.Equal(fingerprint, row[1].GetString());
        var job = seen.RootElement.GetProperty("jobs").EnumerateArray().Single(j => j.GetProperty("id").GetString() == jobId);
        Assert.Equal(1.0, job.GetProperty("ratio").GetDouble());
        var png = await File.ReadAllBytesAsync(screenshot);
        Assert.True(png.AsSpan(0, 8).SequenceEqual(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }), "the screenshot is a PNG");
        Assert.True(seen.RootElement.GetProperty("screenshot").GetProperty("bar").GetInt32() >= 150, run.Output);
    }
}
