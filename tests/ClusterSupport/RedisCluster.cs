using System.Globalization;
using System.Text.RegularExpressions;
using EmbedCache.TestSupport;

namespace EmbedCache.ClusterSupport;

/// <summary>
/// A Redis Cluster of <c>redis-server</c> child processes (Debian's redis-server 7) on loopback ports picked free at
/// start, formed by <c>redis-cli --cluster create</c>, in a temp directory of its own.
/// </summary>
/// <example>
/// <code>
/// await using var cluster = await RedisCluster.StartAsync(primaries: 3, replicasPerPrimary: 1, nodeTimeoutMs: 2000);
/// using var redis = await ConnectionMultiplexer.ConnectAsync(cluster.ConfigurationString);
/// </code>
/// </example>
/// <remarks>
/// <para>Each node runs <c>redis-server --cluster-enabled yes --port P --bind 127.0.0.1 --cluster-config-file
/// DIR/nodes-P.conf --dir DIR/P --appendonly no --save "" --cluster-node-timeout N --repl-diskless-sync-delay 0</c>
/// (the delay otherwise holds each replica's first sync back 5 seconds); with a password, <c>requirepass</c> and
/// <c>masterauth</c>; with a user too, an ACL user with every permission, <c>masteruser</c>, and the default user off.
/// A node listens on P for clients and P + 10000 for the cluster bus; both are picked free.</para>
/// <para>Failover is Redis's own: <see cref="KillPrimaryOfAsync"/> sends SIGKILL, and the replica promotes itself once
/// the other primaries have marked the dead one failing (the node timeout) and an election delay of 0.5–1 s has passed:
/// about 4–5 s here with the default 2000 ms. That needs a majority of primaries alive, which is why a cluster has at
/// least 3 (redis-cli wants 3 anyway).</para>
/// <para><see cref="PauseNodeAsync"/> is SIGSTOP: a paused primary held past the node timeout is failed over, as in
/// production, and comes back as a replica after <see cref="ResumeNodeAsync"/>. Nothing is persisted but the cluster
/// configuration (nodes-P.conf): after <see cref="RestartAllAsync"/> the same cluster comes back, empty.</para>
/// <para>redis-server and redis-cli must be on PATH: the Debian package <c>redis-server</c>, listed in
/// <c>.ci/apt-packages</c> so CI installs it.</para>
/// </remarks>
public sealed partial class RedisCluster : IClusterFixture
{
    private const int BusPortOffset = 10000;
    private static readonly TimeSpan NodeStartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan FormationTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan ReplicationTimeout = TimeSpan.FromSeconds(30);

    private readonly TempDirectory _directory;
    private readonly string _serverPath;
    private readonly ClusterCredentials _credentials;
    private readonly int _primaries;
    private readonly int _nodeTimeoutMs;
    private readonly RedisNode[] _nodes;
    private ClusterProbe? _probe;

    private RedisCluster(TempDirectory directory, string serverPath, ClusterCredentials credentials, int primaries, int nodeTimeoutMs, int[] ports)
    {
        _directory = directory;
        _serverPath = serverPath;
        _credentials = credentials;
        _primaries = primaries;
        _nodeTimeoutMs = nodeTimeoutMs;
        _nodes = ports.Select(p => new RedisNode(p)).ToArray();
    }

    /// <summary>
    /// Starts <paramref name="primaries"/> × (1 + <paramref name="replicasPerPrimary"/>) redis-server processes, forms
    /// the cluster, and returns once every node reports <c>cluster_state:ok</c> with all slots assigned and every
    /// replica is attached.
    /// </summary>
    /// <param name="nodeTimeoutMs"><c>cluster-node-timeout</c>: how long a node may be unreachable before it is failed over.</param>
    /// <param name="user">An ACL user to create (requires <paramref name="password"/>); the default user is then disabled.</param>
    /// <param name="password">The password of <paramref name="user"/>, or of the default user if no user is given.</param>
    /// <exception cref="InvalidOperationException">redis-server or redis-cli is not installed.</exception>
    public static async Task<RedisCluster> StartAsync(int primaries = 3, int replicasPerPrimary = 1, int nodeTimeoutMs = 2000, string? user = null, string? password = null)
    {
        // redis-cli refuses fewer than 3 masters, and a replica is elected only by a majority of primaries.
        ArgumentOutOfRangeException.ThrowIfLessThan(primaries, 3);
        ArgumentOutOfRangeException.ThrowIfNegative(replicasPerPrimary);
        ArgumentOutOfRangeException.ThrowIfLessThan(nodeTimeoutMs, 100);
        var credentials = ClusterCredentials.From(user, password);
        var serverPath = RequireProgram("redis-server");
        var cliPath = RequireProgram("redis-cli");

        var directory = new TempDirectory("redis-cluster");
        var cluster = new RedisCluster(directory, serverPath, credentials, primaries, nodeTimeoutMs,
            LoopbackPorts.PickFree(primaries * (1 + replicasPerPrimary), BusPortOffset));
        try
        {
            await Task.WhenAll(cluster._nodes.Select(n => cluster.StartNodeAsync(n, pickNewPortIfTaken: true)));
            cluster._probe = await cluster.ConnectProbeAsync();
            await cluster.CreateAsync(cliPath, replicasPerPrimary);
            await cluster._probe.WaitUntilConsistentAsync(primaries, $"the new cluster of {cluster._nodes.Length} redis-server nodes to form", FormationTimeout);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    public string Engine => "redis";

    public IReadOnlyList<string> Endpoints => _nodes.Select(n => n.Endpoint).ToArray();

    public string ConfigurationString => _credentials.ClientOptions(Endpoints).ToString(includePassword: true);

    /// <inheritdoc/>
    /// <remarks>SIGKILL; the replica promotes itself (see the class remarks). Waits up to 10 node timeouts + 30 s.</remarks>
    public async Task<string> KillPrimaryOfAsync(string key)
    {
        var probe = Probe();
        var slot = await probe.KeySlotAsync(key);
        var (primary, replicas, view) = await probe.OwnerOfAsync(slot);
        if (replicas.Count == 0)
            throw new InvalidOperationException($"Slot {slot} of key '{key}' is served by {primary.Endpoint}, which has no running replica to promote:\n{view.Text}");

        var node = NodeAt(primary.Endpoint);
        node.Process!.Kill();
        await node.Process.WaitForExitAsync($"redis-server {node.Endpoint} to die of SIGKILL", StopTimeout);
        node.State = NodeState.Killed;

        var failoverTimeout = TimeSpan.FromMilliseconds(_nodeTimeoutMs * 10) + TimeSpan.FromSeconds(30);
        await probe.WaitUntilConsistentAsync(_primaries,
            $"a replica of {primary.Endpoint} ({string.Join(", ", replicas.Select(r => r.Endpoint))}) to take over slot {slot} after SIGKILL", failoverTimeout);
        await probe.WaitUntilSlotServedAsync(ConfigurationString, slot, failoverTimeout);
        return primary.Endpoint;
    }

    /// <inheritdoc/>
    /// <remarks>SIGSTOP; returns once the kernel reports the process stopped.</remarks>
    public async Task PauseNodeAsync(string endpoint)
    {
        var node = NodeAt(endpoint);
        if (node.State != NodeState.Running)
            throw new InvalidOperationException($"{endpoint} is {node.State}, not running: only a running node can be paused.");
        PosixSignals.Stop(node.Process!.Id);
        node.State = NodeState.Paused;
        await Wait.UntilAsync(() => ProcessState(node.Process.Id) == 'T', $"redis-server {endpoint} (pid {node.Process.Id}) to stop on SIGSTOP");
    }

    /// <inheritdoc/>
    /// <remarks>SIGCONT; a primary paused past the node timeout comes back as a replica of the one that took over.</remarks>
    public async Task ResumeNodeAsync(string endpoint)
    {
        var node = NodeAt(endpoint);
        if (node.State != NodeState.Paused)
            throw new InvalidOperationException($"{endpoint} is {node.State}, not paused.");
        PosixSignals.Continue(node.Process!.Id);
        node.State = NodeState.Running;
        await Probe().WaitUntilConsistentAsync(_primaries, $"the cluster to be consistent again after {endpoint} resumed", FormationTimeout);
    }

    /// <inheritdoc/>
    /// <remarks>SIGTERM to every node at once (SIGKILL for a paused one), then waits for each to exit.</remarks>
    public async Task StopAllAsync()
    {
        await Task.WhenAll(_nodes.Select(StopNodeAsync));
    }

    /// <inheritdoc/>
    /// <remarks>Each node reloads its nodes-P.conf and so rejoins the same cluster with its old id; a primary killed
    /// earlier rejoins as a replica of the one that took its slots. No data survives (nothing is persisted).</remarks>
    public async Task RestartAllAsync()
    {
        await StopAllAsync();
        if (_probe is not null)
            await _probe.DisposeAsync();
        _probe = null;
        await Task.WhenAll(_nodes.Select(n => StartNodeAsync(n, pickNewPortIfTaken: false)));
        _probe = await ConnectProbeAsync();
        await _probe.WaitUntilConsistentAsync(_primaries, $"the restarted cluster of {_nodes.Length} redis-server nodes to be consistent", FormationTimeout);
    }

    public Task WaitForReplicationAsync() => Probe().WaitForReplicationAsync(ReplicationTimeout);

    public Task FlushAllAsync() => Probe().FlushAllAsync(ReplicationTimeout);

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_probe is not null)
                await _probe.DisposeAsync();
            _probe = null;
        }
        finally
        {
            foreach (var node in _nodes)
            {
                node.Process?.Dispose();
                node.Process = null;
                node.State = NodeState.Stopped;
            }

            _directory.Dispose();
        }
    }

    private async Task StartNodeAsync(RedisNode node, bool pickNewPortIfTaken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var nodeDirectory = _directory.Combine(node.Port.ToString(CultureInfo.InvariantCulture));
            Directory.CreateDirectory(nodeDirectory);
            node.Process = ChildProcess.StartProgram(_serverPath, ServerArguments(node.Port, nodeDirectory), nodeDirectory, keepLines: 200);
            try
            {
                await node.Process.WaitForLineAsync(ReadyLine(), $"redis-server on port {node.Port} to accept connections", NodeStartTimeout);
                node.State = NodeState.Running;
                return;
            }
            catch (InvalidOperationException) when (pickNewPortIfTaken && attempt < 3 && node.Process.Output.Contains("Address already in use", StringComparison.Ordinal))
            {
                // Another process took the port between the pick and the bind: the cluster is not formed yet, so move.
                node.Process.Dispose();
                node.Port = LoopbackPorts.PickFree(1, BusPortOffset)[0];
            }
        }
    }

    private IEnumerable<string> ServerArguments(int port, string nodeDirectory)
    {
        string[] args =
        [
            "--cluster-enabled", "yes",
            "--port", port.ToString(CultureInfo.InvariantCulture),
            "--bind", "127.0.0.1",
            "--cluster-config-file", _directory.Combine($"nodes-{port}.conf"),
            "--dir", nodeDirectory,
            "--appendonly", "no",
            "--save", "",
            "--cluster-node-timeout", _nodeTimeoutMs.ToString(CultureInfo.InvariantCulture),
            "--repl-diskless-sync-delay", "0",
        ];
        return (_credentials.User, _credentials.Password) switch
        {
            (null, null) => args,
            (null, { } password) => [.. args, "--requirepass", password, "--masterauth", password],
            ({ } user, var password) =>
            [
                .. args,
                "--user", "default", "off",
                "--user", user, "on", ">" + password!, "~*", "&*", "+@all",
                "--masteruser", user, "--masterauth", password!,
            ],
        };
    }

    private async Task CreateAsync(string cliPath, int replicasPerPrimary)
    {
        List<string> args = ["--cluster", "create", .. Endpoints, "--cluster-replicas", replicasPerPrimary.ToString(CultureInfo.InvariantCulture), "--cluster-yes"];
        if (_credentials.User is { } user)
            args.AddRange(["--user", user]);
        if (_credentials.Password is { } password)
            args.AddRange(["--pass", password, "--no-auth-warning"]);
        var result = await ProgramRun.RunAsync(cliPath, args, _directory.Path, timeout: FormationTimeout);
        if (result.ExitCode != 0)
            throw new InvalidOperationException($"redis-cli --cluster create {string.Join(' ', Endpoints)} failed: {result}\n{await Probe().DescribeNodesAsync()}");
    }

    private async Task StopNodeAsync(RedisNode node)
    {
        if (node.Process is null)
            return;
        if (node.State == NodeState.Paused)
            node.Process.Kill();
        await node.Process.StopAsync(StopTimeout);
        node.Process.Dispose();
        node.Process = null;
        if (node.State != NodeState.Killed)
            node.State = NodeState.Stopped;
    }

    private Task<ClusterProbe> ConnectProbeAsync() => ClusterProbe.ConnectAsync(_credentials,
        () => _nodes.Select(n => new NodeStatus(n.Endpoint, n.State)).ToArray(),
        endpoint => NodeAt(endpoint).Process is { } process ? string.Join('\n', process.Output.Split('\n').TakeLast(15)) : null);

    private ClusterProbe Probe() => _probe ?? throw new InvalidOperationException("The cluster is not connected (it failed to start or restart).");

    private RedisNode NodeAt(string endpoint) =>
        _nodes.FirstOrDefault(n => n.Endpoint == endpoint)
        ?? throw new ArgumentException($"{endpoint} is not a node of this cluster ({string.Join(", ", Endpoints)}).", nameof(endpoint));

    /// <summary>The state letter of /proc/PID/stat: R running, S sleeping, T stopped, …</summary>
    private static char ProcessState(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        return stat[stat.LastIndexOf(')') + 2];
    }

    private static string RequireProgram(string name) =>
        ProgramRun.FindOnPath(name)
        ?? throw new InvalidOperationException(
            $"{name} is not on PATH. RedisCluster runs Debian's redis-server package (redis-server and redis-cli), which is " +
            "listed in .ci/apt-packages so CI installs it; on this machine run: apt-get install redis-server");

    [GeneratedRegex("Ready to accept connections")]
    private static partial Regex ReadyLine();

    private sealed class RedisNode(int port)
    {
        public int Port { get; set; } = port;

        public string Endpoint => $"127.0.0.1:{Port}";

        public ChildProcess? Process { get; set; }

        public NodeState State { get; set; } = NodeState.Stopped;
    }
}
