namespace EmbedCache.ClusterSupport;

/// <summary>What a fixture has done to one of its nodes.</summary>
internal enum NodeState
{
    Running,

    /// <summary>Frozen (SIGSTOP): its sockets are open but it answers nothing.</summary>
    Paused,

    /// <summary>Killed by <see cref="IClusterFixture.KillPrimaryOfAsync"/>; down until <see cref="IClusterFixture.RestartAllAsync"/>.</summary>
    Killed,

    /// <summary>Stopped by <see cref="IClusterFixture.StopAllAsync"/>.</summary>
    Stopped,
}

/// <summary>A node's endpoint and state, as a fixture reports them to <see cref="ClusterProbe"/>.</summary>
internal readonly record struct NodeStatus(string Endpoint, NodeState State)
{
    public bool IsRunning => State == NodeState.Running;
}
