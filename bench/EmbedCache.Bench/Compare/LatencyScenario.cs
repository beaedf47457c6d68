using static EmbedCache.Bench.Compare.Measurement;

namespace EmbedCache.Bench.Compare;

/// <summary>The latency table: GetEmbeddings p50/p99 with 1, 4 and 16 saturating clients, then 4 paced ones.</summary>
internal static class LatencyScenario
{
    public static async Task RunAsync(CompareReport report, Uri service, Settings s, CancellationToken token)
    {
        // Latency with 1, 4, 16 concurrent clients (each its own channel), saturated; then 4 clients paced at half
        // the saturated 4-client rate.
        var saturated4 = 0.0;
        foreach (var clients in new[] { 1, 4, 16 })
        {
            var (p50, p99, rate) = await LatencyAsync(service, s.Items, clients, s.Warm, s.Seconds, token);
            report.Latency.Add(FormattableString.Invariant($"| {clients} | closed loop (saturated) | {p50:0.00} | {p99:0.00} | {rate:N0} |"));
            if (clients == 4)
                saturated4 = rate;
        }

        var paced = saturated4 / 2 / 256 / 4;
        var (pacedP50, pacedP99, pacedRate) = await LatencyAsync(service, s.Items, 4, s.Warm, s.Seconds, token, paced);
        report.Latency.Add(FormattableString.Invariant($"| 4 | paced, {paced:N0} requests/s each (half the saturated rate) | {pacedP50:0.00} | {pacedP99:0.00} | {pacedRate:N0} |"));
    }
}
