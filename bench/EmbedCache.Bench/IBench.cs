namespace EmbedCache.Bench;

/// <summary>One benchmark command. Implementations are found by reflection, one file each.</summary>
public interface IBench
{
    /// <summary>The command-line name, e.g. <c>encoders</c>.</summary>
    string Name { get; }

    string Description { get; }

    /// <summary>Runs and prints its figures; returns the exit code.</summary>
    Task<int> RunAsync(string[] args, CancellationToken cancellationToken);
}
