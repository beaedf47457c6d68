using System.Net;
using System.Net.Sockets;
using EmbedCache.TestSupport;

namespace EmbedCache.Deploy.Tests;

/// <summary>
/// The repository's docker-compose.yml run as one compose project of its own: the compose tool that
/// deploy/build-images.sh installs (Debian's <c>docker-compose</c>, or the v2 plugin where it is there), a project
/// name no other test uses, and the environment (ports) every call gets.
/// </summary>
public sealed class Compose
{
    private readonly string _file;
    private readonly string[] _prefix;

    private Compose(string file, string[] prefix, IReadOnlyDictionary<string, string> environment)
    {
        _file = file;
        _prefix = prefix;
        Environment = environment;
    }

    public string Project { get; } = "embedcache-test-" + Guid.NewGuid().ToString("N")[..8];

    public IReadOnlyDictionary<string, string> Environment { get; }

    public static async Task<Compose> CreateAsync(IReadOnlyDictionary<string, string> environment)
    {
        (string File, string[] Args) tool = ProgramRun.FindOnPath("docker-compose") is { } v1 ? (v1, [])
            : (await ProgramRun.RunAsync("docker", ["compose", "version"])).ExitCode == 0 ? ("docker", ["compose"])
            : throw new Xunit.Sdk.XunitException("deploy/build-images.sh left no compose tool: neither docker-compose nor `docker compose`");
        return new Compose(tool.File, tool.Args, environment);
    }

    /// <summary><c>compose -p PROJECT ARGS</c> in the repository root.</summary>
    public Task<ProgramRun.Result> RunAsync(IEnumerable<string> args, TimeSpan? timeout = null) =>
        ProgramRun.RunAsync(_file, [.. _prefix, "-p", Project, .. args], RepoPaths.Root, Environment.ToDictionary(), timeout);

    /// <summary>A loopback port nothing listens on now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
