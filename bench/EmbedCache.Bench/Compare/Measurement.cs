using System.Diagnostics;
using EmbedCache.CacheClient;
using static EmbedCache.Bench.Cli;
using static EmbedCache.Bench.Compare.Workloads;

namespace EmbedCache.Bench.Compare;

/// <summary>
/// How the rates and latencies are measured: the wire paths interleaved after a warm-up (<see cref="MeasureAsync"/>),
/// GetEmbeddings round trips from concurrent clients (<see cref="LatencyAsync"/>), one timed call (<see cref="Rate"/>).
/// </summary>
internal static class Measurement
{
    /// <summary>Bytes per second of one call that returns the bytes it moved.</summary>
    public static async Task<double> Rate(Func<Task<long>> once)
    {
        var clock = Stopwatch.StartNew();
        var bytes = await once();
        return bytes / clock.Elapsed.TotalSeconds;
    }

    /// <summary>A measured path: a round returns units; <paramref name="UnitBytes"/> turns them into embeddings (1 if they already are).</summary>
    public sealed record WirePath(string Name, int UnitBytes, Func<int, Task<long>> Round);

    /// <summary>
    /// Embeddings/s of every path, measured interleaved so that no path gains from running later (a warmer JIT in
    /// the shared client process) or loses to a passing disturbance on the shared host: each path first runs for
    /// <see cref="Settings.Warm"/> seconds unmeasured, then the paths take turns, <see cref="Slices"/> times, each
    /// turn running rounds back to back for <see cref="Settings.Seconds"/> ÷ slices. A path's rate is its units over
    /// its measured time.
    /// </summary>
    public static async Task<double[]> MeasureAsync(Settings s, WirePath[] paths, CancellationToken token)
    {
        const int Slices = 3;
        var r = new int[paths.Length];
        for (var p = 0; p < paths.Length; p++)
        {
            var warm = Stopwatch.StartNew();
            while (warm.Elapsed.TotalSeconds < s.Warm)
                await paths[p].Round(r[p]++);
        }

        var units = new long[paths.Length];
        var seconds = new double[paths.Length];
        for (var slice = 0; slice < Slices; slice++)
        {
            for (var p = 0; p < paths.Length; p++)
            {
                token.ThrowIfCancellationRequested();
                var clock = Stopwatch.StartNew();
                do
                    units[p] += await paths[p].Round(r[p]++);
                while (clock.Elapsed.TotalSeconds < s.Seconds / Slices);
                seconds[p] += clock.Elapsed.TotalSeconds;
            }
        }

        var rates = new double[paths.Length];
        for (var p = 0; p < paths.Length; p++)
        {
            rates[p] = units[p] / seconds[p] / paths[p].UnitBytes;
            Log(FormattableString.Invariant($"{paths[p].Name}: {rates[p]:N0} embeddings/s over {seconds[p]:0.0} s (after {s.Warm:0.#} s warm-up)"));
        }

        return rates;
    }

    /// <summary>
    /// p50/p99 of GetEmbeddings round trips (256 random keys) from <paramref name="clients"/> clients, each with its
    /// own channel and stream. Closed loop when <paramref name="requestsPerSecond"/> is 0 (each client sends its
    /// next request as soon as the previous one returns: the service is saturated, and latency is mostly queueing);
    /// otherwise each client sends on a fixed schedule of that many requests per second (as a trainer does, whose
    /// training step paces its lookups), and latency is timed from each actual send.
    /// </summary>
    public static async Task<(double P50, double P99, double Rate)> LatencyAsync(Uri uri, int items, int clients, double warm, double seconds, CancellationToken token, double requestsPerSecond = 0)
    {
        var all = new List<double>[clients];
        var deadline = DateTime.UtcNow.AddSeconds(seconds + warm + 0.5);
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var tasks = Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
        {
            using var client = new EmbedCacheClient(uri);
            await using var stream = client.OpenPooledLookupStream(token);
            var random = new Random(c);
            // Warm-up: every client runs the same loop, unmeasured, until the measurement starts.
            while (!start.Task.IsCompleted)
                await stream.LookupAsync(RandomLookup("e32", items, 256, random), token);
            var samples = new List<double>(4096);
            var schedule = Stopwatch.StartNew();
            while (DateTime.UtcNow < deadline && samples.Count < 1_000_000)
            {
                var request = RandomLookup("e32", items, 256, random);
                if (requestsPerSecond > 0)
                {
                    var due = TimeSpan.FromSeconds(samples.Count / requestsPerSecond) - schedule.Elapsed;
                    if (due > TimeSpan.Zero)
                        await Task.Delay(due, token);
                }

                var t0 = Stopwatch.GetTimestamp();
                var response = await stream.LookupAsync(request, token);
                samples.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                if (response.Count != 256)
                    throw new InvalidOperationException("short response");
            }

            all[c] = samples;
        }, token)).ToArray();
        await Task.Delay(TimeSpan.FromSeconds(warm), token); // every client connects and warms up
        deadline = DateTime.UtcNow.AddSeconds(seconds);
        var clock = Stopwatch.StartNew();
        start.SetResult();
        await Task.WhenAll(tasks);
        var merged = all.SelectMany(x => x).Order().ToArray();
        return (Percentile(merged, 0.50), Percentile(merged, 0.99), merged.Length * 256 / clock.Elapsed.TotalSeconds);
    }

    public static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
}
