namespace EmbedCache.Engine.Datasets;

/// <summary>
/// Datasets the service may read: those registered by name (in config), and directories under
/// the data root named by a relative path. Nothing outside the data root is ever opened.
/// </summary>
public sealed class DatasetCatalog
{
    private readonly Dictionary<string, string> _registered;
    private readonly string? _dataRoot;
    private readonly Dictionary<string, Dataset> _loaded = new(StringComparer.Ordinal);

    /// <param name="registered">Name → dataset directory (absolute, or relative to the data root).</param>
    /// <param name="dataRoot">Directory under which relative dataset paths are allowed; null allows none.</param>
    public DatasetCatalog(IReadOnlyDictionary<string, string> registered, string? dataRoot)
    {
        _dataRoot = string.IsNullOrEmpty(dataRoot) ? null : Path.GetFullPath(dataRoot);
        _registered = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, path) in registered)
        {
            _registered[name] = Path.IsPathRooted(path) || _dataRoot is null
                ? Path.GetFullPath(path)
                : Path.GetFullPath(Path.Combine(_dataRoot, path));
        }
    }

    public IReadOnlyCollection<string> RegisteredNames => _registered.Keys;

    /// <summary>
    /// Resolves a registered name or a path relative to the data root.
    /// Throws <see cref="DatasetNotFoundException"/> for unknown names and for paths outside the root.
    /// </summary>
    public Dataset Resolve(string nameOrPath)
    {
        if (string.IsNullOrWhiteSpace(nameOrPath))
            throw new DatasetNotFoundException("dataset must be a registered name or a path under the data root");

        lock (_loaded)
        {
            if (_loaded.TryGetValue(nameOrPath, out var cached))
                return cached;
        }

        string directory;
        if (_registered.TryGetValue(nameOrPath, out var registered))
        {
            // The server's file layout is not the caller's business: name the dataset and its config key.
            if (!Directory.Exists(registered))
                throw new DatasetException($"dataset {Echo.Quote(nameOrPath)} is registered (Datasets:{nameOrPath}) but its directory does not exist on the server");
            directory = registered;
        }
        else
        {
            if (_dataRoot is null)
                throw new DatasetNotFoundException($"unknown dataset {Echo.Quote(nameOrPath)} (registered: {string.Join(", ", _registered.Keys)}; no data root is configured for paths)");
            if (!DatasetManifest.IsInside(_dataRoot, nameOrPath))
                throw new DatasetPathException($"dataset path {Echo.Quote(nameOrPath)} is outside the data root");
            directory = Path.GetFullPath(Path.Combine(_dataRoot, nameOrPath));
            if (IsThroughSymlinkOutside(directory))
                throw new DatasetPathException($"dataset path {Echo.Quote(nameOrPath)} leads outside the data root");
            if (!Directory.Exists(directory))
                throw new DatasetNotFoundException($"unknown dataset {Echo.Quote(nameOrPath)}: not a registered name, and no such directory under the data root");
        }

        DatasetManifest manifest;
        try
        {
            manifest = DatasetManifest.Load(directory);
        }
        catch (DatasetException e)
        {
            throw new DatasetException($"dataset {Echo.Quote(nameOrPath)}: {e.Message}");
        }

        var dataset = new Dataset(nameOrPath, directory, manifest);
        lock (_loaded)
            _loaded[nameOrPath] = dataset;
        return dataset;
    }

    private bool IsThroughSymlinkOutside(string directory)
    {
        for (var dir = new DirectoryInfo(directory); dir is not null && dir.FullName.Length > _dataRoot!.Length; dir = dir.Parent)
        {
            if (dir.LinkTarget is null)
                continue;
            var target = dir.ResolveLinkTarget(returnFinalTarget: true);
            if (target is null || !DatasetManifest.IsInside(_dataRoot, Path.GetRelativePath(_dataRoot, target.FullName)))
                return true;
        }

        return false;
    }
}

/// <summary>An unknown dataset name, or a path under the data root with no dataset.</summary>
public sealed class DatasetNotFoundException(string message) : EngineException(ErrorKind.NotFound, message);

/// <summary>A dataset path the catalog refuses: outside the data root, or through a link leading out.</summary>
public sealed class DatasetPathException(string message) : EngineException(ErrorKind.InvalidArgument, message);
