using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EmbedCache.Server.Configuration;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace EmbedCache.Server.Hosting.Security;

/// <summary>
/// TLS for the gRPC listener from a certificate file: PEM certificate + PEM key, or a PKCS#12 (PFX) file
/// with its password. With a certificate the gRPC listener speaks HTTP/2 over TLS (ALPN h2).
/// </summary>
public static class TlsSetup
{
    public static bool IsEnabled(EmbedCacheOptions.TlsSection tls) => !string.IsNullOrWhiteSpace(tls.CertificatePath);

    public static X509Certificate2 LoadCertificate(EmbedCacheOptions.TlsSection tls)
    {
        var cert = Path.GetFullPath(tls.CertificatePath!);
        if (!string.IsNullOrWhiteSpace(tls.KeyPath))
        {
            var key = Path.GetFullPath(tls.KeyPath);
            return string.IsNullOrEmpty(tls.Password)
                ? X509Certificate2.CreateFromPemFile(cert, key)
                : X509Certificate2.CreateFromEncryptedPemFile(cert, tls.Password, key);
        }

        return X509CertificateLoader.LoadPkcs12FromFile(cert, tls.Password);
    }

    /// <summary>Validation lines naming the key: missing files, unreadable certificates, a certificate without its private key.</summary>
    public static IEnumerable<string> Validate(EmbedCacheOptions.TlsSection tls)
    {
        const string p = EmbedCacheOptions.SectionName + ":Tls:";
        if (!IsEnabled(tls))
        {
            if (!string.IsNullOrWhiteSpace(tls.KeyPath))
                yield return $"{p}KeyPath is set but {p}CertificatePath is not";
            yield break;
        }

        if (!File.Exists(tls.CertificatePath))
        {
            yield return $"{p}CertificatePath: file not found: '{tls.CertificatePath}'";
            yield break;
        }

        if (!string.IsNullOrWhiteSpace(tls.KeyPath) && !File.Exists(tls.KeyPath))
        {
            yield return $"{p}KeyPath: file not found: '{tls.KeyPath}'";
            yield break;
        }

        string? error = null;
        try
        {
            using var cert = LoadCertificate(tls);
            if (!cert.HasPrivateKey)
                error = $"{p}CertificatePath: '{tls.CertificatePath}' has no private key (give {p}KeyPath, or a PFX with its key)";
        }
        catch (Exception e) when (e is CryptographicException or IOException or ArgumentException)
        {
            error = $"{p}CertificatePath: cannot load '{tls.CertificatePath}' ({e.Message})";
        }

        if (error is not null)
            yield return error;
    }

    /// <summary>Applies TLS to the gRPC listener when a certificate is configured (the one-line hook in the listener setup).</summary>
    public static void UseEmbedCacheTls(this ListenOptions listen, EmbedCacheOptions options, ServiceEndpoints endpoints)
    {
        if (!IsEnabled(options.Tls))
            return;
        listen.UseHttps(LoadCertificate(options.Tls));
        endpoints.GrpcUsesTls = true;
    }
}
