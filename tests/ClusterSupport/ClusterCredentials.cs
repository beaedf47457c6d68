using StackExchange.Redis;

namespace EmbedCache.ClusterSupport;

/// <summary>
/// Who clients log in as: nobody, the default user with a password (<c>requirepass</c>), or a named ACL user with a
/// password (the default user then disabled, so an unauthenticated client is refused).
/// </summary>
internal sealed record ClusterCredentials(string? User, string? Password)
{
    public static ClusterCredentials From(string? user, string? password)
    {
        if (user is not null && password is null)
            throw new ArgumentException($"User '{user}' was given without a password; give both, only a password, or neither.", nameof(password));
        if (user is { Length: 0 } || password is { Length: 0 })
            throw new ArgumentException("An empty user or password was given; pass null for none.", user is { Length: 0 } ? nameof(user) : nameof(password));
        return new ClusterCredentials(user, password);
    }

    /// <summary>A client configuration for every endpoint, logged in as this user.</summary>
    public ConfigurationOptions ClientOptions(IEnumerable<string> endpoints)
    {
        var options = new ConfigurationOptions { AbortOnConnectFail = false, User = User, Password = Password };
        foreach (var endpoint in endpoints)
            options.EndPoints.Add(endpoint);
        return options;
    }
}
