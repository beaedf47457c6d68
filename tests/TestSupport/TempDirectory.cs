namespace EmbedCache.TestSupport;

/// <summary>A directory owned by one test, removed on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory(string? label = null)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "embedcache-tests",
            $"{label ?? "t"}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    public override string ToString() => Path;
}
