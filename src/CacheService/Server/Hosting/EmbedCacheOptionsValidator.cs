using System.Net;
using EmbedCache.Engine.Caching;
using EmbedCache.Engine.Jobs;
using EmbedCache.Server.Configuration;
using EmbedCache.Server.Grpc;
using Microsoft.Extensions.Options;

namespace EmbedCache.Server.Hosting;

/// <summary>Names the bad key in one line, so a misconfigured service says exactly what to fix.</summary>
public sealed class EmbedCacheOptionsValidator : IValidateOptions<EmbedCacheOptions>
{
    public ValidateOptionsResult Validate(string? name, EmbedCacheOptions options)
    {
        var errors = new List<string>();
        const string p = EmbedCacheOptions.SectionName + ":";

        if (!IsValidListenAddress(options.ListenAddress))
            errors.Add($"{p}{nameof(options.ListenAddress)} must be an IP address, 'localhost' or '*' (was '{options.ListenAddress}')");
        if (options.GrpcPort is < 0 or > 65535)
            errors.Add($"{p}{nameof(options.GrpcPort)} must be between 0 and 65535 (was {options.GrpcPort})");
        if (options.HttpPort is < 0 or > 65535)
            errors.Add($"{p}{nameof(options.HttpPort)} must be between 0 and 65535 (was {options.HttpPort})");
        if (options.GrpcPort != 0 && options.GrpcPort == options.HttpPort)
            errors.Add($"{p}{nameof(options.GrpcPort)} and {p}{nameof(options.HttpPort)} must differ (both {options.GrpcPort})");
        if (options.SaveDir is { Length: > 0 } dir && dir.IndexOfAny(Path.GetInvalidPathChars()) >= 0)
            errors.Add($"{p}{nameof(options.SaveDir)} is not a valid path ('{dir}')");
        if (!options.Store.MemoryOnly && string.IsNullOrWhiteSpace(options.SaveDir) && EmbedCacheOptions.DefaultSaveDirectory() is null)
            errors.Add($"{p}{nameof(options.SaveDir)} is not set and there is no default (neither XDG_DATA_HOME nor HOME is set): set it, or set {p}Store:MemoryOnly=true");
        if (options.Store.SaveDirLockWaitSeconds < 0)
            errors.Add($"{p}Store:SaveDirLockWaitSeconds must be >= 0 (was {options.Store.SaveDirLockWaitSeconds})");
        if (options.LogFormat is not ("text" or "json"))
            errors.Add($"{p}{nameof(options.LogFormat)} must be 'text' or 'json' (was '{options.LogFormat}')");
        if (string.IsNullOrWhiteSpace(options.DataRoot))
            errors.Add($"{p}{nameof(options.DataRoot)} must name a directory");
        foreach (var (dataset, path) in options.Datasets)
        {
            if (string.IsNullOrWhiteSpace(path))
                errors.Add($"{p}Datasets:{dataset} must name a dataset directory");
        }

        foreach (var (encoderName, encoder) in options.Encoders)
        {
            foreach (var error in encoder.Validate(encoderName))
                errors.Add(p + error);
        }

        foreach (var error in options.ToStoreOptions(contentRoot: "/").Validate())
            errors.Add($"{p}Store:{error}");
        var s = options.Store;
        if (s.CheckpointIntervalSeconds < 0)
            errors.Add($"{p}Store:CheckpointIntervalSeconds must be >= 0 (was {s.CheckpointIntervalSeconds})");
        var j = options.Jobs;
        if (j.DefaultBatchSize is < 1 or > JobOptions.MaxBatchSize)
            errors.Add($"{p}Jobs:DefaultBatchSize must be between 1 and {JobOptions.MaxBatchSize} (was {j.DefaultBatchSize})");
        if (j.MaxWorkers < 1)
            errors.Add($"{p}Jobs:MaxWorkers must be >= 1 (was {j.MaxWorkers})");
        if (j.MaxConcurrentJobs < 1)
            errors.Add($"{p}Jobs:MaxConcurrentJobs must be >= 1 (was {j.MaxConcurrentJobs})");
        if (j.CheckpointIntervalSeconds < 1)
            errors.Add($"{p}Jobs:CheckpointIntervalSeconds must be >= 1 (was {j.CheckpointIntervalSeconds})");
        var m = options.SharedMemory;
        if (string.IsNullOrWhiteSpace(m.Directory) || !Path.IsPathFullyQualified(m.Directory))
            errors.Add($"{p}SharedMemory:Directory must be an absolute directory path (was '{m.Directory}')");
        if (m.RingBytes is < SharedRing.MinBytes or > SharedRing.MaxBytes)
            errors.Add($"{p}SharedMemory:RingBytes must be between {SharedRing.MinBytes} and {SharedRing.MaxBytes} (was {m.RingBytes})");
        if (m.SlowReaderSeconds < 1)
            errors.Add($"{p}SharedMemory:SlowReaderSeconds must be >= 1 (was {m.SlowReaderSeconds})");
        var l = options.Limits;
        if (l.MaxKeysPerRequest < 1)
            errors.Add($"{p}Limits:MaxKeysPerRequest must be >= 1 (was {l.MaxKeysPerRequest})");
        if (l.MaxReceiveMessageBytes < 4096)
            errors.Add($"{p}Limits:MaxReceiveMessageBytes must be >= 4096 (was {l.MaxReceiveMessageBytes})");
        if (l.MaxStreamBatchSize is < 1 or > CacheEngine.MaxStreamBatchSize)
            errors.Add($"{p}Limits:MaxStreamBatchSize must be between 1 and {CacheEngine.MaxStreamBatchSize} (was {l.MaxStreamBatchSize})");
        if (l.DefaultStreamBatchSize < 1 || l.DefaultStreamBatchSize > l.MaxStreamBatchSize)
            errors.Add($"{p}Limits:DefaultStreamBatchSize must be between 1 and Limits:MaxStreamBatchSize (was {l.DefaultStreamBatchSize})");
        if (l.MaxConcurrentStreamsPerCaller < 1)
            errors.Add($"{p}Limits:MaxConcurrentStreamsPerCaller must be >= 1 (was {l.MaxConcurrentStreamsPerCaller})");
        if (l.MaxStreamsPerConnection < 1)
            errors.Add($"{p}Limits:MaxStreamsPerConnection must be >= 1 (was {l.MaxStreamsPerConnection})");
        if (l.MaxFeatureBytesPerRequest < 1)
            errors.Add($"{p}Limits:MaxFeatureBytesPerRequest must be >= 1 (was {l.MaxFeatureBytesPerRequest})");
        errors.AddRange(Security.ApiKeySet.Validate(options));
        errors.AddRange(Security.TlsSetup.Validate(options.Tls));
        errors.AddRange(UnixSocketListener.Validate(options));

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    internal static bool IsValidListenAddress(string? address) =>
        address is "*" or "localhost" || IPAddress.TryParse(address, out _);
}
