using System.Net;
using System.Security.Cryptography;
using System.Text;
using EmbedCache.Server.Configuration;

namespace EmbedCache.Server.Hosting.Security;

/// <summary>What a caller's key lets it do. Admin keys may call the trainer API too.</summary>
public enum CallerRole
{
    None,
    Trainer,
    Admin,
}

/// <summary>
/// The configured API keys, held only as SHA-256 hashes. A presented key is hashed and compared with
/// every stored hash in constant time (no early exit), so timing says nothing about how close a guess was.
/// Keys are never logged; a caller is named by a short prefix of its key's hash.
/// </summary>
public sealed class ApiKeySet
{
    /// <summary>Shortest key accepted: anything shorter is guessable.</summary>
    public const int MinKeyLength = 16;

    private readonly byte[][] _trainer;
    private readonly byte[][] _admin;

    private ApiKeySet(byte[][] trainer, byte[][] admin) => (_trainer, _admin) = (trainer, admin);

    /// <summary>True when any key is configured: every call but health and reflection then needs one.</summary>
    public bool Enabled => _trainer.Length + _admin.Length > 0;

    public static ApiKeySet Load(EmbedCacheOptions.AuthSection auth)
    {
        var (trainer, admin, _) = Read(auth);
        return new ApiKeySet([.. trainer.Select(Hash)], [.. admin.Select(Hash)]);
    }

    /// <summary>Checks a key; <paramref name="callerId"/> names the caller without revealing the key.</summary>
    public CallerRole Authenticate(ReadOnlySpan<char> key, out string callerId)
    {
        var hash = Hash(key);
        var admin = MatchesAny(_admin, hash);
        var trainer = MatchesAny(_trainer, hash);
        callerId = "key:" + Convert.ToHexStringLower(hash.AsSpan(0, 4));
        return admin ? CallerRole.Admin : trainer ? CallerRole.Trainer : CallerRole.None;
    }

    /// <summary>Parses <c>Bearer &lt;key&gt;</c>; null when the header is missing or of another scheme.</summary>
    public static string? BearerToken(string? header)
    {
        const string scheme = "Bearer ";
        if (header is null || !header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
            return null;
        var token = header[scheme.Length..].Trim();
        return token.Length == 0 ? null : token;
    }

    private static bool MatchesAny(byte[][] hashes, byte[] hash)
    {
        var any = false;
        foreach (var h in hashes)
            any |= CryptographicOperations.FixedTimeEquals(h, hash);
        return any;
    }

    private static byte[] Hash(string key) => Hash(key.AsSpan());

    private static byte[] Hash(ReadOnlySpan<char> key)
    {
        var bytes = new byte[Encoding.UTF8.GetMaxByteCount(key.Length)];
        var n = Encoding.UTF8.GetBytes(key, bytes);
        var hash = SHA256.HashData(bytes.AsSpan(0, n));
        CryptographicOperations.ZeroMemory(bytes);
        return hash;
    }

    /// <summary>Validation lines for the Auth section and the loopback rule, each naming its key (never a key's value).</summary>
    public static IEnumerable<string> Validate(EmbedCacheOptions options)
    {
        const string p = EmbedCacheOptions.SectionName + ":Auth:";
        var (trainer, admin, errors) = Read(options.Auth);
        foreach (var e in errors)
            yield return e;
        if (trainer.Count + admin.Count == 0 && !IsLoopback(options.ListenAddress) && !options.Auth.AllowAnonymousNonLoopback)
        {
            yield return $"{EmbedCacheOptions.SectionName}:ListenAddress is '{options.ListenAddress}', not loopback, and no API keys are configured: " +
                $"set {p}TrainerKeys/{p}AdminKeys (or {p}TrainerKeysFile/{p}AdminKeysFile), or {p}AllowAnonymousNonLoopback=true to serve anyone who can reach the port";
        }
    }

    /// <summary>Anonymous mode is safe only where no one else can connect.</summary>
    public static bool IsLoopback(string? address) =>
        address == "localhost" || (IPAddress.TryParse(address, out var ip) && IPAddress.IsLoopback(ip));

    private static (List<string> Trainer, List<string> Admin, List<string> Errors) Read(EmbedCacheOptions.AuthSection auth)
    {
        const string p = EmbedCacheOptions.SectionName + ":Auth:";
        var errors = new List<string>();
        var trainer = Collect(auth.TrainerKeys, auth.TrainerKeysFile, p + nameof(auth.TrainerKeys), p + nameof(auth.TrainerKeysFile), errors);
        var admin = Collect(auth.AdminKeys, auth.AdminKeysFile, p + nameof(auth.AdminKeys), p + nameof(auth.AdminKeysFile), errors);
        return (trainer, admin, errors);
    }

    private static List<string> Collect(List<string> inline, string? file, string inlineKey, string fileKey, List<string> errors)
    {
        var keys = new List<string>();
        for (var i = 0; i < inline.Count; i++)
            Add(inline[i].Trim(), $"{inlineKey}:{i}");
        if (!string.IsNullOrWhiteSpace(file))
        {
            string[] lines;
            try
            {
                lines = File.ReadAllLines(Path.GetFullPath(file));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
            {
                errors.Add($"{fileKey}: cannot read '{file}' ({e.Message})");
                return keys;
            }

            for (var i = 0; i < lines.Length; i++)
            {
                var line = lines[i].Trim();
                if (line.Length > 0 && !line.StartsWith('#'))
                    Add(line, $"{fileKey} line {i + 1}");
            }
        }

        return keys;

        void Add(string key, string where)
        {
            if (key.Length < MinKeyLength)
                errors.Add($"{where}: an API key must be at least {MinKeyLength} characters (was {key.Length})");
            else if (key.Any(char.IsWhiteSpace))
                errors.Add($"{where}: an API key must not contain whitespace");
            else
                keys.Add(key);
        }
    }
}
