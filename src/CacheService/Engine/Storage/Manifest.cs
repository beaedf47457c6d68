using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using EmbedCache.Engine.Embeddings;

namespace EmbedCache.Engine.Storage;

/// <summary>A namespace as recorded in the manifest at a checkpoint.</summary>
internal sealed record ManifestNamespace(
    Fingerprint Fingerprint, string Encoder, int Dim, EmbeddingDType DType, Tier Tier, Tier StorageTier, long Items, long Bytes);

/// <summary>
/// The commit record of a store checkpoint: the FASTER checkpoint token of each of the three stores, the
/// namespaces with their counts and the number of label records. Written to a temp file, synced and
/// renamed over <c>manifest.json</c>, so a checkpoint is all three stores or none.
/// </summary>
internal sealed record Manifest(
    long Version, DateTimeOffset Time, IReadOnlyDictionary<string, Guid> Tokens, IReadOnlyList<ManifestNamespace> Namespaces, long LabelItems)
{
    public const string FileName = "manifest.json";

    public void Write(string root)
    {
        var path = Path.Combine(root, FileName);
        var temp = path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
            {
                json.WriteStartObject();
                json.WriteNumber("format", StoreDirectory.FormatVersion);
                json.WriteNumber("version", Version);
                json.WriteString("time", Time.ToString("O", CultureInfo.InvariantCulture));
                json.WriteStartObject("stores");
                foreach (var (name, token) in Tokens)
                {
                    json.WriteStartObject(name);
                    json.WriteString("token", token.ToString());
                    json.WriteEndObject();
                }

                json.WriteEndObject();
                json.WriteStartArray("namespaces");
                foreach (var ns in Namespaces)
                {
                    json.WriteStartObject();
                    json.WriteString("fingerprint", ns.Fingerprint.ToString());
                    json.WriteString("encoder", ns.Encoder);
                    json.WriteNumber("dim", ns.Dim);
                    json.WriteString("dtype", ns.DType.ToString());
                    json.WriteString("tier", ns.Tier.ToString());
                    json.WriteString("storageTier", ns.StorageTier.ToString());
                    json.WriteNumber("items", ns.Items);
                    json.WriteNumber("bytes", ns.Bytes);
                    json.WriteEndObject();
                }

                json.WriteEndArray();
                json.WriteNumber("labelItems", LabelItems);
                json.WriteEndObject();
            }

            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
        StoreDirectory.SyncDirectory(root);
    }

    /// <summary>Reads the manifest, or null when there is none. Throws <see cref="InvalidDataException"/> when it is unreadable.</summary>
    public static Manifest? Read(string root)
    {
        var path = Path.Combine(root, FileName);
        if (!File.Exists(path))
            return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var r = doc.RootElement;
            var format = r.GetProperty("format").GetInt32();
            if (format != StoreDirectory.FormatVersion)
                throw new InvalidDataException($"manifest format {format}, expected {StoreDirectory.FormatVersion}");
            var tokens = new Dictionary<string, Guid>();
            foreach (var store in r.GetProperty("stores").EnumerateObject())
            {
                tokens[store.Name] = Guid.Parse(store.Value.GetProperty("token").GetString()!);
            }

            var namespaces = new List<ManifestNamespace>();
            foreach (var ns in r.GetProperty("namespaces").EnumerateArray())
            {
                if (!Fingerprint.TryParse(ns.GetProperty("fingerprint").GetString(), out var fp))
                    throw new InvalidDataException("bad fingerprint in manifest");
                namespaces.Add(new ManifestNamespace(
                    fp,
                    ns.GetProperty("encoder").GetString() ?? "",
                    ns.GetProperty("dim").GetInt32(),
                    Enum.Parse<EmbeddingDType>(ns.GetProperty("dtype").GetString()!),
                    Enum.Parse<Tier>(ns.GetProperty("tier").GetString()!),
                    Enum.Parse<Tier>(ns.GetProperty("storageTier").GetString()!),
                    ns.GetProperty("items").GetInt64(),
                    ns.GetProperty("bytes").GetInt64()));
            }

            // Absent from manifests written before label records were counted: they count from zero.
            var labelItems = r.TryGetProperty("labelItems", out var l) ? l.GetInt64() : 0;
            return new Manifest(
                r.GetProperty("version").GetInt64(),
                DateTimeOffset.Parse(r.GetProperty("time").GetString()!, CultureInfo.InvariantCulture),
                tokens, namespaces, labelItems);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or FormatException or ArgumentException or InvalidOperationException)
        {
            throw new InvalidDataException($"{path} is unreadable: {e.Message}", e);
        }
    }
}

/// <summary>The SaveDir's identity: a marker file with a magic string and the format version, and an exclusive lock.</summary>
internal static partial class StoreDirectory
{
    public const int FormatVersion = 1;
    public const string MarkerFileName = "embedcache-store.json";
    public const string LockFileName = "store.lock";
    public const string Magic = "embedcache-store";

    /// <summary>What a SaveDir is, before it is opened.</summary>
    public enum Kind
    {
        Empty,
        Ours,
    }

    /// <summary>Checks the marker. Throws <see cref="StoreOpenException"/> (movable) when the directory is not ours or of another format.</summary>
    public static Kind Inspect(string root)
    {
        if (!Directory.Exists(root))
            return Kind.Empty;
        var marker = Path.Combine(root, MarkerFileName);
        if (!File.Exists(marker))
        {
            if (HasEntries(root))
                throw Movable($"SaveDir '{root}' is not empty and has no {MarkerFileName}: it is not an EmbedCache store. Point SaveDir at an empty or new directory.");
            return Kind.Empty;
        }

        int format;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(marker));
            if (doc.RootElement.GetProperty("magic").GetString() != Magic)
                throw Movable($"SaveDir '{root}' has a {MarkerFileName} that is not an EmbedCache store's (wrong magic).");
            format = doc.RootElement.GetProperty("format").GetInt32();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw Movable($"SaveDir '{root}' is corrupt: {MarkerFileName} is unreadable ({e.Message}).", e);
        }

        if (format != FormatVersion)
            throw Movable($"SaveDir '{root}' holds store format {format}; this build reads format {FormatVersion}. Use a matching build, or a new SaveDir.");
        return Kind.Ours;
    }

    private static bool HasEntries(string root)
    {
        using var entries = Directory.EnumerateFileSystemEntries(root).GetEnumerator();
        return entries.MoveNext();
    }

    public static void WriteMarker(string root)
    {
        Directory.CreateDirectory(root);
        var path = Path.Combine(root, MarkerFileName);
        using (var stream = new FileStream(path + ".tmp", FileMode.Create, FileAccess.Write, FileShare.None))
        {
            using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
            {
                json.WriteStartObject();
                json.WriteString("magic", Magic);
                json.WriteNumber("format", FormatVersion);
                json.WriteString("created", DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture));
                json.WriteEndObject();
            }

            stream.Flush(flushToDisk: true);
        }

        File.Move(path + ".tmp", path, overwrite: true);
        SyncDirectory(root);
    }

    /// <summary>
    /// The cause of a failed file operation in words: .NET's message for an errno is "&lt;strerror&gt; : '&lt;path&gt;'",
    /// e.g. "No space left on device" or "Read-only file system".
    /// </summary>
    public static string CauseOf(Exception e) => e.Message.Split(" : ", 2)[0];

    /// <summary>
    /// Fails with one clear line when the SaveDir cannot be written (read-only mount, no permission, full): the
    /// store must write its log and checkpoints there, so it cannot open at all, and nothing in it is touched.
    /// </summary>
    public static void CheckWritable(string root)
    {
        var probe = Path.Combine(root, $".write-probe-{Environment.ProcessId}");
        try
        {
            Directory.CreateDirectory(root);
            File.WriteAllBytes(probe, new byte[1]);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StoreOpenException(
                $"SaveDir '{root}' cannot be written ({CauseOf(e)}): the store keeps its log and checkpoints there; make it writable or choose another SaveDir.", e);
        }
    }

    /// <summary>Takes the SaveDir's exclusive lock (released by the OS if the process dies).</summary>
    public static FileStream Lock(string root)
    {
        try
        {
            return new FileStream(Path.Combine(root, LockFileName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new StoreOpenException($"SaveDir '{root}' is in use by another process ({LockFileName} is locked).", e);
        }
    }

    /// <summary>Renames the SaveDir out of the way; returns the new name.</summary>
    public static string MoveAside(string root)
    {
        var target = $"{root.TrimEnd(Path.DirectorySeparatorChar)}.moved-{DateTime.UtcNow:yyyyMMdd'T'HHmmssfff'Z'}";
        Directory.Move(root, target);
        return target;
    }

    internal static StoreOpenException Movable(string message, Exception? inner = null)
    {
        var e = inner is null ? new StoreOpenException(message) : new StoreOpenException(message, inner);
        e.Data[MovableKey] = true;
        return e;
    }

    internal const string MovableKey = "EmbedCache.MovableSaveDir";

    /// <summary>fsync on the directory, so a rename in it is durable (best effort; no-op off Unix).</summary>
    public static void SyncDirectory(string path)
    {
        if (OperatingSystem.IsWindows())
            return;
        var fd = open(path, 0 /* O_RDONLY */);
        if (fd < 0)
            return;
        _ = fsync(fd);
        _ = close(fd);
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
