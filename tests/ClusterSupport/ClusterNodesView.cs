using System.Globalization;

namespace EmbedCache.ClusterSupport;

/// <summary>One line of <c>CLUSTER NODES</c>: a node as one member of the cluster sees it.</summary>
internal sealed record ClusterNodeEntry(
    string Id,
    string Endpoint,
    IReadOnlySet<string> Flags,
    string? PrimaryId,
    string LinkState,
    IReadOnlyList<SlotRange> Slots)
{
    public bool IsMyself => Flags.Contains("myself");

    public bool IsPrimary => Flags.Contains("master");

    public bool IsReplica => Flags.Contains("slave");

    /// <summary>Flagged failing (<c>fail</c>, or <c>fail?</c> before the others agree) or not yet known (<c>handshake</c>, <c>noaddr</c>).</summary>
    public bool IsSuspect => Flags.Contains("fail") || Flags.Contains("fail?") || Flags.Contains("handshake") || Flags.Contains("noaddr");

    public bool Owns(int slot)
    {
        foreach (var range in Slots)
        {
            if (range.Contains(slot))
                return true;
        }

        return false;
    }
}

internal readonly record struct SlotRange(int Start, int End)
{
    public bool Contains(int slot) => slot >= Start && slot <= End;

    public override string ToString() => Start == End ? Start.ToString(CultureInfo.InvariantCulture) : $"{Start}-{End}";
}

/// <summary>
/// A node's <c>CLUSTER NODES</c> reply, parsed. The format is Redis's, which Garnet follows:
/// <c>id ip:port@bus[,hostname] flags primary-id ping-sent pong-recv config-epoch link-state slot…</c>.
/// </summary>
internal sealed class ClusterNodesView
{
    public const int SlotCount = 16384;

    private ClusterNodesView(string text, IReadOnlyList<ClusterNodeEntry> entries)
    {
        Text = text;
        Entries = entries;
    }

    /// <summary>The reply as the node gave it, for failure messages.</summary>
    public string Text { get; }

    public IReadOnlyList<ClusterNodeEntry> Entries { get; }

    public ClusterNodeEntry? Myself => Entries.FirstOrDefault(e => e.IsMyself);

    public ClusterNodeEntry? ById(string id) => Entries.FirstOrDefault(e => e.Id == id);

    public ClusterNodeEntry? ByEndpoint(string endpoint) => Entries.FirstOrDefault(e => e.Endpoint == endpoint);

    /// <summary>The primary this view says serves <paramref name="slot"/>, or null if none does.</summary>
    public ClusterNodeEntry? OwnerOf(int slot) => Entries.FirstOrDefault(e => e.IsPrimary && e.Owns(slot));

    public IEnumerable<ClusterNodeEntry> ReplicasOf(string primaryId) => Entries.Where(e => e.IsReplica && e.PrimaryId == primaryId);

    public static ClusterNodesView Parse(string text)
    {
        var entries = new List<ClusterNodeEntry>();
        foreach (var rawLine in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var fields = rawLine.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 8)
                throw new FormatException($"A CLUSTER NODES line has {fields.Length} fields, expected at least 8: '{rawLine}'");

            var slots = new List<SlotRange>();
            foreach (var token in fields.AsSpan(8))
            {
                // "[slot->-id]" and "[slot-<-id]" are slots being migrated or imported: not served from here yet.
                if (token.StartsWith('['))
                    continue;
                var dash = token.IndexOf('-', StringComparison.Ordinal);
                slots.Add(dash < 0
                    ? new SlotRange(int.Parse(token, CultureInfo.InvariantCulture), int.Parse(token, CultureInfo.InvariantCulture))
                    : new SlotRange(int.Parse(token.AsSpan(0, dash), CultureInfo.InvariantCulture), int.Parse(token.AsSpan(dash + 1), CultureInfo.InvariantCulture)));
            }

            entries.Add(new ClusterNodeEntry(
                Id: fields[0],
                Endpoint: ClientEndpoint(fields[1]),
                Flags: fields[2].Split(',').ToHashSet(StringComparer.Ordinal),
                PrimaryId: fields[3] == "-" ? null : fields[3],
                LinkState: fields[7],
                Slots: slots));
        }

        return new ClusterNodesView(text, entries);
    }

    /// <summary>"127.0.0.1:7000@17000,host" → "127.0.0.1:7000".</summary>
    private static string ClientEndpoint(string address)
    {
        var end = address.IndexOfAny(['@', ',']);
        return end < 0 ? address : address[..end];
    }
}
