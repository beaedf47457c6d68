using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace EmbedCache.ClusterSupport;

/// <summary>
/// Free TCP ports on 127.0.0.1, picked at random below the kernel's ephemeral range: a fixture restarts its nodes on
/// the same ports, and a port from the ephemeral range may meanwhile be the local end of some client's connection.
/// </summary>
internal static class LoopbackPorts
{
    private const int LowestPort = 10000;

    /// <summary>
    /// <paramref name="count"/> distinct ports that can be listened on now; with <paramref name="busOffset"/>, port +
    /// offset is free too (a redis-server node listens on both: clients on the port, the cluster bus on port + 10000).
    /// </summary>
    public static int[] PickFree(int count, int busOffset = 0)
    {
        var highest = EphemeralRangeStart() - 1 - busOffset;
        if (highest - LowestPort < count * 16)
            throw new InvalidOperationException($"No room for {count} ports (+{busOffset}) between {LowestPort} and the ephemeral range start {highest + 1 + busOffset}.");

        var picked = new List<int>(count);
        for (var attempt = 0; picked.Count < count; attempt++)
        {
            if (attempt > 1000)
                throw new InvalidOperationException($"Found only {picked.Count} of {count} free loopback ports in {attempt} tries.");
            var port = Random.Shared.Next(LowestPort, highest + 1);
            if (picked.Contains(port) || picked.Contains(port + busOffset) || picked.Contains(port - busOffset))
                continue;
            if (CanListen(port) && (busOffset == 0 || CanListen(port + busOffset)))
                picked.Add(port);
        }

        return [.. picked];
    }

    private static bool CanListen(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            socket.Listen();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int EphemeralRangeStart()
    {
        const string RangeFile = "/proc/sys/net/ipv4/ip_local_port_range";
        if (File.Exists(RangeFile))
        {
            var first = File.ReadAllText(RangeFile).Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries)[0];
            return int.Parse(first, CultureInfo.InvariantCulture);
        }

        return 32768;
    }
}
