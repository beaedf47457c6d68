using System.Net;
using Microsoft.Extensions.Options;

namespace EmbedCache.Service.Hosting;

/// <summary>The <c>EmbedCache</c> configuration section.</summary>
public sealed class EmbedCacheOptions
{
    public const string SectionName = "EmbedCache";

    /// <summary>Address both listeners bind to: an IP address, <c>localhost</c> or <c>*</c> (all interfaces).</summary>
    public string ListenAddress { get; set; } = "127.0.0.1";

    /// <summary>gRPC over HTTP/2 cleartext. 0 picks a free port (tests).</summary>
    public int GrpcPort { get; set; } = 50051;

    /// <summary>HTTP/1.1 for /healthz, /metrics and the status page. 0 picks a free port (tests).</summary>
    public int HttpPort { get; set; } = 8080;

    /// <summary>Directory for the persistent store; empty means memory only.</summary>
    public string? SaveDir { get; set; }
}

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

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    internal static bool IsValidListenAddress(string? address) =>
        address is "*" or "localhost" || IPAddress.TryParse(address, out _);
}
