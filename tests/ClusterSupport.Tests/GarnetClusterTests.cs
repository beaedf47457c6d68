using Xunit.Abstractions;

namespace EmbedCache.ClusterSupport.Tests;

/// <summary><see cref="GarnetCluster"/>: Microsoft Garnet 2.2.8 in this process, failed over as an operator would.</summary>
public sealed class GarnetClusterTests(ITestOutputHelper output) : ClusterFixtureContract(output)
{
    protected override string Engine => "garnet";

    /// <summary>Each primary recovers its AOF.</summary>
    protected override bool KeysSurviveRestart => true;

    protected override async Task<IClusterFixture> StartAsync(int replicasPerPrimary = 1, string? user = null, string? password = null) =>
        await GarnetCluster.StartAsync(primaries: 3, replicasPerPrimary, nodeTimeoutMs: 2000, user, password);

    [Fact]
    public async Task PauseNode_IsNotSupported_AndSaysWhy()
    {
        await using var cluster = await GarnetCluster.StartAsync(primaries: 1, replicasPerPrimary: 0);

        var refused = await Assert.ThrowsAsync<NotSupportedException>(() => cluster.PauseNodeAsync(cluster.Endpoints[0]));

        Assert.Contains("RedisCluster", refused.Message, StringComparison.Ordinal);
    }
}
