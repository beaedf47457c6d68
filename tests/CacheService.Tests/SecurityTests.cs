using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using EmbedCache.CacheClient;
using EmbedCache.Contract.V1;
using EmbedCache.TestSupport;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;

namespace EmbedCache.CacheService.Tests;

/// <summary>API keys and roles, the loopback rule, TLS, and the limits, over real loopback listeners.</summary>
public sealed class SecurityTests
{
    private const string TrainerKey = "trainer-key-0123456789abcdef";
    private const string AdminKey = "admin-key-0123456789abcdef0123";

    private static Metadata Bearer(string key) => new() { { "authorization", $"Bearer {key}" } };

    private static string[] KeyArgs => [$"--EmbedCache:Auth:TrainerKeys:0={TrainerKey}", $"--EmbedCache:Auth:AdminKeys:0={AdminKey}"];

    [Fact]
    public async Task WithKeys_TrainerAndAdminRoles_AreEnforced_AndHealthAndReflectionStayOpen()
    {
        await using var service = await InProcessService.StartAsync(null, KeyArgs);
        var c = new Contract(service.Channel);
        var list = new ListEncodersRequest();

        Assert.Equal(StatusCode.Unauthenticated, await Contract.StatusOf(() => c.Cache.ListEncodersAsync(list).ResponseAsync));
        Assert.Equal(StatusCode.Unauthenticated, await Contract.StatusOf(() => c.Cache.ListEncodersAsync(list, Bearer("not-a-key-0123456789")).ResponseAsync));
        Assert.Equal(StatusCode.Unauthenticated, await Contract.StatusOf(() => c.Admin.GetStatsAsync(new GetStatsRequest()).ResponseAsync));
        Assert.Equal(StatusCode.OK, await Contract.StatusOf(() => c.Cache.ListEncodersAsync(list, Bearer(TrainerKey)).ResponseAsync));
        Assert.Equal(StatusCode.PermissionDenied, await Contract.StatusOf(() => c.Admin.GetStatsAsync(new GetStatsRequest(), Bearer(TrainerKey)).ResponseAsync));
        Assert.Equal(StatusCode.OK, await Contract.StatusOf(() => c.Admin.GetStatsAsync(new GetStatsRequest(), Bearer(AdminKey)).ResponseAsync));
        Assert.Equal(StatusCode.OK, await Contract.StatusOf(() => c.Cache.ListEncodersAsync(list, Bearer(AdminKey)).ResponseAsync));
        // Streaming calls are checked too, before any work.
        var stream = new StreamDatasetRequest { Dataset = "digits", Split = "train" };
        stream.Encoders.Add("random-mlp");
        Assert.Equal(StatusCode.Unauthenticated, await Contract.StatusOf(async () =>
        {
            using var call = c.Cache.StreamDataset(stream);
            await call.ResponseStream.MoveNext(CancellationToken.None);
        }));
        Assert.Equal(StatusCode.PermissionDenied, await Contract.StatusOf(async () =>
        {
            using var call = c.Admin.Prewarm(new PrewarmRequest { Dataset = "digits" }, Bearer(TrainerKey));
            await call.ResponseStream.MoveNext(CancellationToken.None);
        }));

        using var anonymous = new EmbedCacheClient(service.Channel);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, await anonymous.CheckHealthAsync());
        var reflection = new Grpc.Reflection.V1Alpha.ServerReflection.ServerReflectionClient(service.Channel);
        using (var call = reflection.ServerReflectionInfo())
        {
            await call.RequestStream.WriteAsync(new Grpc.Reflection.V1Alpha.ServerReflectionRequest { ListServices = "" });
            await call.RequestStream.CompleteAsync();
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        }

        // The client library's ApiKey option sends the same header.
        using var trainer = new EmbedCacheClient(service.Channel, new EmbedCacheClientOptions { ApiKey = TrainerKey });
        Assert.Equal(5, (await trainer.Cache.ListEncodersAsync(list)).Encoders.Count);
    }

    [Fact]
    public async Task WithKeys_Metrics_NeedsAnAdminKey_AndHealthzStaysOpen()
    {
        await using var service = await InProcessService.StartAsync(null, KeyArgs);

        async Task<HttpStatusCode> Get(string path, string? key)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(path, UriKind.Relative));
            if (key is not null)
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            using var response = await service.Http.SendAsync(request);
            return response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.Unauthorized, await Get("/metrics", null));
        Assert.Equal(HttpStatusCode.Unauthorized, await Get("/metrics", "wrong-key-0123456789abcdef"));
        Assert.Equal(HttpStatusCode.Forbidden, await Get("/metrics", TrainerKey));
        Assert.Equal(HttpStatusCode.OK, await Get("/metrics", AdminKey));
        Assert.Equal(HttpStatusCode.OK, await Get("/healthz", null));
    }

    [Fact]
    public async Task KeysFromAFile_AreLoaded_CommentsAndBlankLinesIgnored()
    {
        using var dir = new TempDirectory("keys");
        var file = dir.Combine("admin.keys");
        await File.WriteAllLinesAsync(file, ["# ops keys", "", "  file-admin-key-0123456789abcdef  "]);
        await using var service = await InProcessService.StartAsync(null, $"--EmbedCache:Auth:AdminKeysFile={file}");
        var c = new Contract(service.Channel);

        Assert.Equal(StatusCode.Unauthenticated, await Contract.StatusOf(() => c.Admin.GetStatsAsync(new GetStatsRequest()).ResponseAsync));
        Assert.Equal(StatusCode.OK, await Contract.StatusOf(() => c.Admin.GetStatsAsync(new GetStatsRequest(), Bearer("file-admin-key-0123456789abcdef")).ResponseAsync));
        Assert.Equal(StatusCode.Unauthenticated, await Contract.StatusOf(() => c.Admin.GetStatsAsync(new GetStatsRequest(), Bearer("# ops keys")).ResponseAsync));
    }

    [Fact]
    public async Task NonLoopbackWithoutKeys_RefusesToStart_WithOneLineNamingTheKey()
    {
        using var dir = new TempDirectory("anon");
        using var child = ChildProcess.Start(ServiceDll,
            ["--EmbedCache:ListenAddress=0.0.0.0", "--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", $"--EmbedCache:SaveDir={dir.Path}"]);

        var exit = await child.WaitForExitAsync("the service to refuse anonymous mode on 0.0.0.0");

        Assert.Equal(2, exit);
        var line = Assert.Single(child.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("EmbedCache:ListenAddress", line, StringComparison.Ordinal);
        Assert.Contains("EmbedCache:Auth:AllowAnonymousNonLoopback", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NonLoopbackWithKeysFromTheEnvironment_Starts_EnforcesThem_AndNeverLogsThem()
    {
        using var dir = new TempDirectory("envkeys");
        using var child = ChildProcess.Start(ServiceDll,
            ["--EmbedCache:ListenAddress=0.0.0.0", "--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", $"--EmbedCache:SaveDir={dir.Path}"],
            new Dictionary<string, string> { ["EmbedCache__Auth__TrainerKeys__0"] = TrainerKey, ["EmbedCache__Auth__AdminKeys__0"] = AdminKey });

        var listening = await child.WaitForListeningAsync("the service to listen on all interfaces with keys");
        using var channel = GrpcChannel.ForAddress(listening.Grpc);
        var c = new Contract(channel);

        Assert.Equal(StatusCode.Unauthenticated, await Contract.StatusOf(() => c.Cache.ListEncodersAsync(new ListEncodersRequest()).ResponseAsync));
        Assert.Equal(StatusCode.PermissionDenied, await Contract.StatusOf(() => c.Admin.ListJobsAsync(new ListJobsRequest(), Bearer(TrainerKey)).ResponseAsync));
        Assert.Equal(StatusCode.OK, await Contract.StatusOf(() => c.Admin.ListJobsAsync(new ListJobsRequest(), Bearer(AdminKey)).ResponseAsync));
        child.Terminate();
        Assert.Equal(0, await child.WaitForExitAsync("the service to stop"));
        Assert.Contains("Rejected", child.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(TrainerKey, child.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(AdminKey, child.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tls_WithASelfSignedPemCertificate_ServesHttp2OverTls_AndRefusesCleartext()
    {
        using var dir = new TempDirectory("tls");
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        await File.WriteAllTextAsync(dir.Combine("cert.pem"), cert.ExportCertificatePem());
        await File.WriteAllTextAsync(dir.Combine("key.pem"), key.ExportPkcs8PrivateKeyPem());

        await using var service = await InProcessService.StartAsync(null,
            $"--EmbedCache:Tls:CertificatePath={dir.Combine("cert.pem")}", $"--EmbedCache:Tls:KeyPath={dir.Combine("key.pem")}");
        Assert.Equal("https", service.Endpoints.GrpcUri.Scheme);

        var seen = new List<string>();
        using var handler = new HttpClientHandler
        {
            // Trust exactly this certificate, nothing else.
            ServerCertificateCustomValidationCallback = (_, presented, _, _) =>
            {
                seen.Add(presented!.Thumbprint);
                return presented.Thumbprint == cert.Thumbprint;
            },
        };
        using var tls = GrpcChannel.ForAddress(service.Endpoints.GrpcUri, new GrpcChannelOptions { HttpHandler = handler });
        var encoders = await new Contract(tls).Cache.ListEncodersAsync(new ListEncodersRequest());

        Assert.Equal(5, encoders.Encoders.Count);
        Assert.Contains(cert.Thumbprint, seen);
        using var cleartext = GrpcChannel.ForAddress(new Uri($"http://127.0.0.1:{service.Endpoints.Grpc.Port}"));
        Assert.NotEqual(StatusCode.OK, await Contract.StatusOf(() => new Contract(cleartext).Cache.ListEncodersAsync(new ListEncodersRequest()).ResponseAsync));
    }

    [Fact]
    public async Task Tls_WithAMissingCertificate_RefusesToStartNamingTheKey()
    {
        using var dir = new TempDirectory("tls");
        var e = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() =>
            InProcessService.StartAsync(dir.Combine("save"), $"--EmbedCache:Tls:CertificatePath={dir.Combine("missing.pfx")}"));
        Assert.Contains("EmbedCache:Tls:CertificatePath", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Limits_MessageSizeFeatureBytesKeysAndStreamsPerCaller_FailWithResourceExhausted()
    {
        await using var service = await InProcessService.StartAsync(null,
            "--EmbedCache:Limits:MaxReceiveMessageBytes=65536", "--EmbedCache:Limits:MaxFeatureBytesPerRequest=4096",
            "--EmbedCache:Limits:MaxKeysPerRequest=100", "--EmbedCache:Limits:MaxConcurrentStreamsPerCaller=2");
        var c = new Contract(service.Channel);

        async Task<RpcException> Fails(LookupRequest r) => await Assert.ThrowsAsync<RpcException>(() => c.Cache.LookupAsync(r).ResponseAsync);

        var tooBig = Contract.Custom("random-mlp", "a");
        tooBig.Features = new FeatureBatch { Tensor = new TensorFeatures { Data = Google.Protobuf.ByteString.CopyFrom(new byte[100_000]), ItemShape = { 25_000 } } };
        Assert.Equal(StatusCode.ResourceExhausted, (await Fails(tooBig)).StatusCode);

        var features = Contract.Custom("random-mlp", "a");
        features.Features = new FeatureBatch { Tensor = new TensorFeatures { Data = Google.Protobuf.ByteString.CopyFrom(new byte[8192]), ItemShape = { 2048 } } };
        var e = await Fails(features);
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Contains("Limits:MaxFeatureBytesPerRequest", e.Status.Detail, StringComparison.Ordinal);

        var keys = await Fails(Contract.Custom("random-mlp", Enumerable.Range(0, 101).Select(i => $"k{i}").ToArray()));
        Assert.Equal(StatusCode.ResourceExhausted, keys.StatusCode);
        Assert.Contains("Limits:MaxKeysPerRequest = 100", keys.Status.Detail, StringComparison.Ordinal);

        // Two streams open and answering; a third from the same caller is refused; closing one frees a slot.
        var open = new List<AsyncDuplexStreamingCall<LookupRequest, LookupResponse>>();
        for (var i = 0; i < 2; i++)
        {
            var call = c.Cache.GetEmbeddings();
            await call.RequestStream.WriteAsync(Contract.Custom("random-mlp", "a"));
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            open.Add(call);
        }

        async Task<StatusCode> ThirdStream()
        {
            using var third = c.Cache.GetEmbeddings();
            return await Contract.StatusOf(async () =>
            {
                await third.RequestStream.WriteAsync(Contract.Custom("random-mlp", "a"));
                await third.ResponseStream.MoveNext(CancellationToken.None);
            });
        }

        var refused = await ThirdStream();
        await open[0].RequestStream.CompleteAsync();
        Assert.False(await open[0].ResponseStream.MoveNext(CancellationToken.None));
        open[0].Dispose();
        var allowed = await ThirdStream();

        Assert.Equal(StatusCode.ResourceExhausted, refused);
        Assert.Equal(StatusCode.OK, allowed);
        open[1].Dispose();
        // The service is still fine after all that.
        Assert.Equal(5, (await c.Cache.ListEncodersAsync(new ListEncodersRequest())).Encoders.Count);
    }

    private static string ServiceDll => RepoPaths.BuiltAssembly("CacheService", "EmbedCache.CacheService");
}
