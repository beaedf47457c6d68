using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Garnet;
using Garnet.server;
using Garnet.server.Auth.Settings;
using EmbedCache.TestSupport;
using Tsavorite.core;

namespace EmbedCache.ClusterSupport;

/// <summary>
/// A cluster of Microsoft Garnet 2.2.8 servers run in this process (the <c>Microsoft.Garnet</c> library's
/// <see cref="GarnetServer"/>), on loopback ports picked free at start, each with its checkpoint and AOF directory in
/// the fixture's temp directory. The cluster is formed by hand, as Garnet's own cluster tests do it:
/// <c>CLUSTER ADDSLOTSRANGE</c> on the primaries, <c>CLUSTER SET-CONFIG-EPOCH</c> on every node, <c>CLUSTER MEET</c> one
/// node at a time, then <c>CLUSTER REPLICATE</c> on the replicas.
/// </summary>
/// <example>
/// <code>
/// await using var cluster = await GarnetCluster.StartAsync(primaries: 3, replicasPerPrimary: 1);
/// using var redis = await ConnectionMultiplexer.ConnectAsync(cluster.ConfigurationString);
/// </code>
/// </example>
/// <remarks>
/// <para><b>Failover.</b> Garnet 2.2.8 does not fail over by itself. Its cluster has no failure detection and no replica
/// election: a replica becomes primary only when told to, by <c>CLUSTER FAILOVER [FORCE|TAKEOVER]</c> sent to it (or
/// <c>FAILOVER</c> sent to its primary). In Garnet's source <c>FailoverManager.TryStartReplicaFailover</c> has no caller
/// but that command, and the voting step of FORCE is a TODO in <c>ReplicaFailoverSession</c>, so FORCE and TAKEOVER
/// both take over at once; the maintainers say so too (microsoft/garnet issue 583: "Automatic failover is not supported
/// in cluster mode", use an operator that calls CLUSTER FAILOVER; issue 176: replicas do not initiate failover on their
/// own). Seen here with 2.2.8: with the primary's server disposed, its replica was still a replica 20 s later (20 node
/// timeouts of 1 s), reporting <c>master_link_status:down</c>, while every node's <c>CLUSTER INFO</c> kept saying
/// <c>cluster_state:ok</c> and <c>CLUSTER NODES</c> listed the dead primary as <c>master … disconnected</c>, slots and
/// all (Garnet's <c>CLUSTER INFO</c> says <c>ok</c> unconditionally). So <see cref="KillPrimaryOfAsync"/> does what that
/// operator does: it disposes the primary's server, sends <c>CLUSTER FAILOVER TAKEOVER</c> to its most caught-up
/// replica, and waits until every running node's slot map names the new owner (gossip, every second here). The waits
/// rely on those slot maps and on which nodes the fixture knows to be running, never on <c>cluster_state</c>.</para>
/// <para><b>Killing.</b> There is no process to SIGKILL: the node's <see cref="GarnetServer"/> is disposed without a
/// checkpoint, its listener and connections closed at once. Its AOF gets a commit per operation (<c>CommitFrequencyMs</c>
/// 0, not awaited before the reply), so a restart recovers what it had acknowledged.</para>
/// <para><b>Pausing.</b> Not supported: <see cref="PauseNodeAsync"/> throws <see cref="NotSupportedException"/>. A
/// node's threads are this process's thread pool, so it cannot be frozen apart from the test, and Garnet 2.2.8 has no
/// <c>CLIENT PAUSE</c> that would at least stop it answering clients. Use <see cref="RedisCluster"/> for a stalled node.</para>
/// <para><b>Restarting.</b> <see cref="RestartAllAsync"/> disposes every server and starts new ones on the same ports
/// from the same directories with <c>Recover</c> on: each node reloads its cluster config (nodes.conf) and a primary
/// replays its AOF, so its keys survive; primaries start first, because a replica's start blocks until it has synced
/// from its primary. A primary that was killed comes back still claiming the slots its replica took over; Garnet
/// settles the claim by config epoch (the replica's is newer) and leaves it a primary without slots, so the fixture
/// makes it a replica of its successor with <c>CLUSTER REPLICATE</c>, as an operator would.</para>
/// <para>Storage uses the managed <see cref="DeviceType.RandomAccess"/> device, not the native libaio one (libaio1 may
/// be missing), and small memory sizes: this is a test cluster. Replicas need the AOF, so every node has it on.</para>
/// </remarks>
public sealed class GarnetCluster : IClusterFixture
{
    private static readonly TimeSpan FormationTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan FailoverTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan ReplicationTimeout = TimeSpan.FromSeconds(30);

    private readonly TempDirectory _directory;
    private readonly ClusterCredentials _credentials;
    private readonly int _primaries;
    private readonly int _clusterTimeoutSeconds;
    private readonly GarnetNode[] _nodes;

    /// <summary>Killed primary → the replica that took over its slots, until a restart makes it that replica's replica.</summary>
    private readonly Dictionary<string, string> _successors = [];

    private ClusterProbe? _probe;

    /// <summary>The cluster as it was last seen consistent: which nodes are primaries, for the restart order.</summary>
    private ClusterNodesView? _layout;

    private GarnetCluster(TempDirectory directory, ClusterCredentials credentials, int primaries, int nodeTimeoutMs, int[] ports)
    {
        _directory = directory;
        _credentials = credentials;
        _primaries = primaries;
        _clusterTimeoutSeconds = Math.Max(1, (nodeTimeoutMs + 999) / 1000);
        _nodes = ports.Select(p => new GarnetNode(p)).ToArray();
    }

    /// <summary>
    /// Starts <paramref name="primaries"/> × (1 + <paramref name="replicasPerPrimary"/>) Garnet servers in this process,
    /// forms the cluster, and returns once every node agrees on who serves the 16384 slots and every replica is attached.
    /// </summary>
    /// <param name="nodeTimeoutMs">Garnet's <c>ClusterTimeout</c> (whole seconds, at least 1): how long its gossip and
    /// failover wait on another node. Garnet detects no failures, so it decides no failover.</param>
    /// <param name="user">An ACL user to create (requires <paramref name="password"/>); the default user is then disabled.</param>
    /// <param name="password">The password of <paramref name="user"/>, or of the default user if no user is given.</param>
    public static async Task<GarnetCluster> StartAsync(int primaries = 3, int replicasPerPrimary = 1, int nodeTimeoutMs = 2000, string? user = null, string? password = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(primaries, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(replicasPerPrimary);
        ArgumentOutOfRangeException.ThrowIfLessThan(nodeTimeoutMs, 1);
        var credentials = ClusterCredentials.From(user, password);

        var directory = new TempDirectory("garnet-cluster");
        var cluster = new GarnetCluster(directory, credentials, primaries, nodeTimeoutMs, LoopbackPorts.PickFree(primaries * (1 + replicasPerPrimary)));
        try
        {
            if (credentials.User is not null)
                await File.WriteAllTextAsync(cluster.AclFile, $"user default off\nuser {credentials.User} on >{credentials.Password} +@all ~*\n");
            await Task.WhenAll(cluster._nodes.Select(n => cluster.StartNodeAsync(n, recover: false, pickNewPortIfTaken: true)));
            cluster._probe = await cluster.ConnectProbeAsync();
            await cluster.FormAsync();
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    public string Engine => "garnet";

    public IReadOnlyList<string> Endpoints => _nodes.Select(n => n.Endpoint).ToArray();

    public string ConfigurationString => _credentials.ClientOptions(Endpoints).ToString(includePassword: true);

    private string AclFile => _directory.Combine("users.acl");

    /// <inheritdoc/>
    /// <remarks>Disposes the primary's server, then <c>CLUSTER FAILOVER TAKEOVER</c> on its most caught-up replica (see the class remarks).</remarks>
    public async Task<string> KillPrimaryOfAsync(string key)
    {
        var probe = Probe();
        var slot = await probe.KeySlotAsync(key);
        var (primary, replicas, view) = await probe.OwnerOfAsync(slot);
        if (replicas.Count == 0)
            throw new InvalidOperationException($"Slot {slot} of key '{key}' is served by {primary.Endpoint}, which has no running replica to promote:\n{view.Text}");

        await StopNodeAsync(NodeAt(primary.Endpoint), NodeState.Killed);

        var successor = replicas[0];
        var bestOffset = long.MinValue;
        foreach (var replica in replicas)
        {
            var offset = (await probe.ReplicationInfoAsync(replica.Endpoint)).GetValueOrDefault("master_repl_offset", "");
            if (long.TryParse(offset.Split(',')[0], CultureInfo.InvariantCulture, out var parsed) && parsed > bestOffset)
                (successor, bestOffset) = (replica, parsed);
        }

        var answer = await probe.ExecuteAsync(successor.Endpoint, "CLUSTER", "FAILOVER", "TAKEOVER");
        if (answer.ToString() != "OK")
            throw new InvalidOperationException($"CLUSTER FAILOVER TAKEOVER on {successor.Endpoint} answered '{answer}'.");
        _successors[primary.Endpoint] = successor.Endpoint;

        _layout = await probe.WaitUntilConsistentAsync(_primaries,
            $"replica {successor.Endpoint} to take over slot {slot} from the killed {primary.Endpoint} (CLUSTER FAILOVER TAKEOVER)", FailoverTimeout);
        await probe.WaitUntilSlotServedAsync(ConfigurationString, slot, FailoverTimeout);
        return primary.Endpoint;
    }

    /// <inheritdoc/>
    /// <exception cref="NotSupportedException">Always: see the class remarks.</exception>
    public Task PauseNodeAsync(string endpoint) => throw PauseNotSupported();

    /// <inheritdoc/>
    /// <exception cref="NotSupportedException">Always: see the class remarks.</exception>
    public Task ResumeNodeAsync(string endpoint) => throw PauseNotSupported();

    /// <inheritdoc/>
    /// <remarks>Disposes every server (no checkpoint is taken; the AOF holds what they acknowledged).</remarks>
    public async Task StopAllAsync()
    {
        await Task.WhenAll(_nodes.Where(n => n.Server is not null).Select(n => StopNodeAsync(n, NodeState.Stopped)));
    }

    /// <inheritdoc/>
    /// <remarks>New servers from the same directories with <c>Recover</c> on, primaries first; a killed primary is
    /// made a replica of its successor (see the class remarks). Keys written to a primary survive.</remarks>
    public async Task RestartAllAsync()
    {
        await StopAllAsync();
        if (_probe is not null)
            await _probe.DisposeAsync();
        _probe = null;

        // A replica's start blocks until it has synced from its primary, so the primaries come first. A killed primary
        // still calls itself one (its nodes.conf says so), so it starts with them.
        var wasReplica = _nodes.ToDictionary(n => n, n => _layout?.ByEndpoint(n.Endpoint) is { IsReplica: true } && !_successors.ContainsKey(n.Endpoint));
        await Task.WhenAll(_nodes.Where(n => !wasReplica[n]).Select(n => StartNodeAsync(n, recover: true, pickNewPortIfTaken: false)));
        await Task.WhenAll(_nodes.Where(n => wasReplica[n]).Select(n => StartNodeAsync(n, recover: true, pickNewPortIfTaken: false)));

        var probe = _probe = await ConnectProbeAsync();
        if (_successors.Count > 0)
        {
            var ids = await probe.WaitUntilAllKnowEachOtherAsync("the restarted nodes to know each other again", FormationTimeout);
            foreach (var (killed, successor) in _successors)
                await ReplicateAsync(killed, ids[successor]);
            _successors.Clear();
        }

        _layout = await probe.WaitUntilConsistentAsync(_primaries, $"the restarted cluster of {_nodes.Length} Garnet nodes to be consistent", FormationTimeout);
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
            await StopAllAsync();
        }
        finally
        {
            _directory.Dispose();
        }
    }

    private async Task FormAsync()
    {
        var probe = Probe();
        var primaries = _nodes.Take(_primaries).ToArray();
        var replicas = _nodes.Skip(_primaries).ToArray();

        for (var i = 0; i < primaries.Length; i++)
        {
            var first = ClusterNodesView.SlotCount * i / primaries.Length;
            var last = (ClusterNodesView.SlotCount * (i + 1) / primaries.Length) - 1;
            await probe.ExecuteAsync(primaries[i].Endpoint, "CLUSTER", "ADDSLOTSRANGE", first, last);
        }

        // Distinct config epochs: Garnet settles competing claims by epoch, and fresh nodes all have 0.
        for (var i = 0; i < _nodes.Length; i++)
            await probe.ExecuteAsync(_nodes[i].Endpoint, "CLUSTER", "SET-CONFIG-EPOCH", i + 1);

        // One node at a time, as Garnet's own cluster tests do: the next MEET only once the nodes so far all know the
        // newcomer (MEETs sent all at once left nodes receiving gossip from peers they never recorded).
        IReadOnlyDictionary<string, string> ids = new Dictionary<string, string>();
        for (var joined = 1; joined < _nodes.Length; joined++)
        {
            var newcomer = _nodes[joined];
            await probe.ExecuteAsync(_nodes[0].Endpoint, "CLUSTER", "MEET", "127.0.0.1", newcomer.Port);
            ids = await probe.WaitUntilAllKnowEachOtherAsync($"{newcomer.Endpoint} and the {joined} Garnet nodes before it to meet",
                FormationTimeout, _nodes.Take(joined + 1).Select(n => n.Endpoint).ToArray());
        }

        for (var i = 0; i < replicas.Length; i++)
            await ReplicateAsync(replicas[i].Endpoint, ids[primaries[i % primaries.Length].Endpoint]);

        _layout = await probe.WaitUntilConsistentAsync(_primaries, $"the new cluster of {_nodes.Length} Garnet nodes to form", FormationTimeout);
    }

    /// <summary><c>CLUSTER REPLICATE</c>, which Garnet runs in the background: the consistency wait sees it finish.</summary>
    private async Task ReplicateAsync(string replica, string primaryId)
    {
        var answer = await Probe().ExecuteAsync(replica, "CLUSTER", "REPLICATE", primaryId);
        if (answer.ToString() != "OK")
            throw new InvalidOperationException($"CLUSTER REPLICATE {primaryId} on {replica} answered '{answer}'.");
    }

    private async Task StartNodeAsync(GarnetNode node, bool recover, bool pickNewPortIfTaken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var server = new GarnetServer(ServerOptions(node, recover), node.Log, servers: null, cleanupDir: false);
            try
            {
                // Start blocks while a recovering replica syncs from its primary: keep it off the caller's thread.
                await Task.Run(server.Start);
                node.Server = server;
                node.State = NodeState.Running;
                return;
            }
            catch (Exception e) when (pickNewPortIfTaken && attempt < 3 && IsAddressInUse(e))
            {
                // Another process took the port between the pick and the bind: the cluster is not formed yet, so move.
                server.Dispose(deleteDir: false);
                node.Port = LoopbackPorts.PickFree(1)[0];
            }
            catch
            {
                server.Dispose(deleteDir: false);
                throw;
            }
        }
    }

    private GarnetServerOptions ServerOptions(GarnetNode node, bool recover)
    {
        var nodeDirectory = _directory.Combine(node.Port.ToString(CultureInfo.InvariantCulture));
        var options = new GarnetServerOptions
        {
            EndPoints = [new IPEndPoint(IPAddress.Loopback, node.Port)],
            EnableCluster = true,
            CleanClusterConfig = false,
            ClusterTimeout = _clusterTimeoutSeconds,
            // Gossip every second (default 5): the nodes learn a new slot owner that much sooner.
            GossipDelay = 1,
            ClusterConfigFlushFrequencyMs = 0,
            // A replica whose link to its primary broke asks again after a second (default: never).
            ClusterReplicationReestablishmentTimeout = 1,
            EnableAOF = true,
            CheckpointDir = Path.Combine(nodeDirectory, "checkpoints"),
            DeviceType = DeviceType.RandomAccess,
            Recover = recover,
            QuietMode = true,
            IndexMemorySize = "16m",
            LogMemorySize = "64m",
            PageSize = "1m",
            AofMemorySize = "32m",
            AofPageSize = "4m",
        };
        switch (_credentials)
        {
            case { User: { } user, Password: { } password }:
                options.AuthSettings = new AclAuthenticationPasswordSettings(AclFile);
                options.ClusterUsername = user;
                options.ClusterPassword = password;
                break;
            case { Password: { } password }:
                options.AuthSettings = new PasswordAuthenticationSettings(password);
                options.ClusterPassword = password;
                break;
        }

        return options;
    }

    private static async Task StopNodeAsync(GarnetNode node, NodeState state)
    {
        if (node.Server is { } server)
        {
            node.Server = null;
            await Task.Run(() => server.Dispose(deleteDir: false));
        }

        node.State = state;
    }

    private Task<ClusterProbe> ConnectProbeAsync() => ClusterProbe.ConnectAsync(_credentials,
        () => _nodes.Select(n => new NodeStatus(n.Endpoint, n.State)).ToArray(),
        endpoint => NodeAt(endpoint).Log.Tail);

    private ClusterProbe Probe() => _probe ?? throw new InvalidOperationException("The cluster is not connected (it failed to start or restart).");

    private GarnetNode NodeAt(string endpoint) =>
        _nodes.FirstOrDefault(n => n.Endpoint == endpoint)
        ?? throw new ArgumentException($"{endpoint} is not a node of this cluster ({string.Join(", ", Endpoints)}).", nameof(endpoint));

    private static NotSupportedException PauseNotSupported() => new(
        "GarnetCluster cannot pause a node: its Garnet servers run on this process's own threads, which cannot be frozen apart " +
        "from the test's, and Garnet 2.2.8 has no CLIENT PAUSE. Use RedisCluster (SIGSTOP) for an unresponsive node.");

    private static bool IsAddressInUse(Exception e)
    {
        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
        {
            if (inner is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse })
                return true;
        }

        return false;
    }

    private sealed class GarnetNode(int port)
    {
        public int Port { get; set; } = port;

        public string Endpoint => $"127.0.0.1:{Port}";

        public GarnetServer? Server { get; set; }

        public NodeState State { get; set; } = NodeState.Stopped;

        public RecentLogLines Log { get; } = new(keep: 15);
    }
}
