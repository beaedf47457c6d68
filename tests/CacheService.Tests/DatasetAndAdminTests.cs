using System.Globalization;
using EmbedCache.Contract.V1;
using EmbedCache.TestSupport;
using Grpc.Core;

namespace EmbedCache.CacheService.Tests;

/// <summary>Prewarm jobs, StreamDataset and the admin RPCs, on the shipped digits dataset.</summary>
public sealed class DatasetAndAdminTests
{
    private const string Mlp = "random-mlp";
    private const int TrainItems = 1438;

    private static PrewarmRequest DigitsTrain(params string[] encoders)
    {
        var r = new PrewarmRequest { Dataset = "digits", BatchSize = 128, Workers = 2 };
        r.Splits.Add("train");
        r.Encoders.Add(encoders);
        return r;
    }

    [Fact]
    public async Task Prewarm_FillsTheSplit_AndASecondPrewarmSkipsEverything()
    {
        await using var service = await InProcessService.StartAsync();
        var admin = new Contract(service.Channel).Admin;

        var first = await Contract.PrewarmToEndAsync(admin, DigitsTrain(Mlp));
        var second = await Contract.PrewarmToEndAsync(admin, DigitsTrain(Mlp));

        var done = first[^1];
        Assert.Equal(JobState.Completed, done.State);
        Assert.Equal((ulong)TrainItems, done.Total);
        Assert.Equal(done.Total, done.Processed);
        Assert.Equal((ulong)TrainItems, done.Encoded);
        Assert.Equal(done.Total, done.Committed);
        Assert.True(first.Count >= 2, "a followed prewarm reports progress before its end");
        Assert.Equal(0ul, second[^1].Encoded);
        Assert.Equal((ulong)TrainItems, second[^1].Skipped);
        var stats = await admin.GetStatsAsync(new GetStatsRequest());
        Assert.Equal((ulong)TrainItems, stats.Namespaces.Single(n => n.Encoder == Mlp).Items);
    }

    [Fact]
    public async Task StreamDataset_SameSeedAndEpoch_GivesEveryCallerTheSameBatches_WithTheDatasetLabels()
    {
        await using var service = await InProcessService.StartAsync();
        var contract = new Contract(service.Channel);
        await Contract.PrewarmToEndAsync(contract.Admin, DigitsTrain(Mlp));
        var request = new StreamDatasetRequest { Dataset = "digits", Split = "train", BatchSize = 200, Shuffle = true, Seed = 7, Epoch = 3, IncludeLabels = true };
        request.Encoders.Add(Mlp);

        var a = await ReadAll(contract, request);
        var b = await ReadAll(contract, request);
        request.Epoch = 4;
        var otherEpoch = await ReadAll(contract, request);

        var order = a.SelectMany(x => x.Indices).ToList();
        Assert.Equal(TrainItems, order.Count);
        Assert.Equal(Enumerable.Range(0, TrainItems).Select(i => (ulong)i), order.Order());
        Assert.NotEqual(Enumerable.Range(0, TrainItems).Select(i => (ulong)i), order);
        Assert.Equal(order, b.SelectMany(x => x.Indices));
        Assert.Equal(a.SelectMany(x => x.Results[0].Embeddings.ToByteArray()), b.SelectMany(x => x.Results[0].Embeddings.ToByteArray()));
        Assert.NotEqual(order, otherEpoch.SelectMany(x => x.Indices));

        var labels = DigitsTrainLabels();
        foreach (var batch in a)
        {
            Assert.Equal(batch.Indices.Count, batch.Labels.Groups.GroupIds.Count);
            for (var i = 0; i < batch.Indices.Count; i++)
                Assert.Equal(labels[batch.Indices[i]], batch.Labels.Groups.GroupIds[i]);
        }
    }

    [Fact]
    public async Task TwoClientsStreamIdenticalBatches_WhileAThirdPrewarmsAnotherDataset()
    {
        using var data = new TempDirectory("data");
        var texts = Directory.CreateDirectory(data.Combine("texts")).FullName;
        await File.WriteAllLinesAsync(Path.Combine(texts, "train.jsonl"),
            Enumerable.Range(0, 64).Select(i => $"{{\"text\": \"sentence number {i} about caching\", \"label\": {i % 4}}}"));
        await File.WriteAllTextAsync(Path.Combine(texts, "dataset.json"), """{ "splits": { "train": "train.jsonl" }, "labels": { "kind": "group" } }""");
        var digits = Path.Combine(RepoPaths.Root, "deploy", "datasets", "digits");
        await using var service = await InProcessService.StartAsync(null, $"--EmbedCache:DataRoot={data.Path}", $"--EmbedCache:Datasets:digits={digits}");
        var contract = new Contract(service.Channel);
        await Contract.PrewarmToEndAsync(contract.Admin, DigitsTrain(Mlp));
        var request = new StreamDatasetRequest { Dataset = "digits", Split = "train", BatchSize = 100, Shuffle = true, Seed = 11, Epoch = 1, IncludeLabels = true };
        request.Encoders.Add(Mlp);
        var other = new PrewarmRequest { Dataset = "texts", BatchSize = 16 };
        other.Encoders.Add("random-minilm");

        var a = ReadAll(new Contract(service.Channel), request);
        var b = ReadAll(new Contract(service.Channel), request);
        var prewarm = Contract.PrewarmToEndAsync(contract.Admin, other);
        await Task.WhenAll(a, b, prewarm);

        Assert.Equal(JobState.Completed, (await prewarm)[^1].State);
        Assert.Equal(64ul, (await prewarm)[^1].Encoded);
        Assert.Equal((await a).Count, (await b).Count);
        for (var i = 0; i < (await a).Count; i++)
            Assert.Equal((await a)[i], (await b)[i]);
        Assert.Equal(TrainItems, (await a).Sum(x => x.Indices.Count));
    }

    [Fact]
    public async Task StreamDataset_NotPrewarmed_FailsWithFailedPrecondition_OrFillsWhenAsked()
    {
        await using var service = await InProcessService.StartAsync();
        var contract = new Contract(service.Channel);
        var request = new StreamDatasetRequest { Dataset = "digits", Split = "val", BatchSize = 100 };
        request.Encoders.Add(Mlp);

        var e = await Assert.ThrowsAsync<RpcException>(() => ReadAll(contract, request));
        request.FillMissing = true;
        var filled = await ReadAll(contract, request);

        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("not cached", e.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(359, filled.Sum(b => b.Indices.Count));
    }

    [Fact]
    public async Task Prewarm_BadDatasetsAndEncoders_GetClearStatuses()
    {
        await using var service = await InProcessService.StartAsync();
        var admin = new Contract(service.Channel).Admin;

        Task Start(PrewarmRequest r) => Contract.PrewarmToEndAsync(admin, r);

        Assert.Equal(StatusCode.NotFound, await Contract.StatusOf(() => Start(new PrewarmRequest { Dataset = "nope" })));
        Assert.Equal(StatusCode.InvalidArgument, await Contract.StatusOf(() => Start(new PrewarmRequest { Dataset = "../../etc" })));
        Assert.Equal(StatusCode.NotFound, await Contract.StatusOf(() => Start(DigitsTrain("nope"))));
        Assert.Equal(StatusCode.InvalidArgument, await Contract.StatusOf(() => Start(DigitsTrain("random-minilm"))));
        var badSplit = DigitsTrain(Mlp);
        badSplit.Splits.Add("test");
        Assert.Equal(StatusCode.InvalidArgument, await Contract.StatusOf(() => Start(badSplit)));
        var bigBatch = DigitsTrain(Mlp);
        bigBatch.BatchSize = 1_000_000;
        Assert.Equal(StatusCode.InvalidArgument, await Contract.StatusOf(() => Start(bigBatch)));
    }

    [Fact]
    public async Task Prewarm_OutlivesItsCaller_AndIsListedUntilDone()
    {
        await using var service = await InProcessService.StartAsync();
        var admin = new Contract(service.Channel).Admin;

        string jobId;
        using (var call = admin.Prewarm(DigitsTrain(Mlp)))
        {
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            jobId = call.ResponseStream.Current.JobId;
        }

        await Wait.UntilAsync(async () =>
            (await admin.ListJobsAsync(new ListJobsRequest())).Jobs.Single(j => j.JobId == jobId).State == JobState.Completed,
            "the prewarm job to complete after its caller left");
        var stats = await admin.GetStatsAsync(new GetStatsRequest());
        Assert.Equal((ulong)TrainItems, stats.Namespaces.Single(n => n.Encoder == Mlp).Items);
    }

    [Fact]
    public async Task CheckpointDropAndCancel_Work_AndUnknownsAreNotFound()
    {
        await using var service = await InProcessService.StartAsync();
        var contract = new Contract(service.Channel);
        await Contract.PrewarmToEndAsync(contract.Admin, DigitsTrain(Mlp));

        var checkpoint = await contract.Admin.CheckpointAsync(new CheckpointRequest());
        var dropped = await contract.Admin.DropNamespaceAsync(new DropNamespaceRequest { Encoder = Mlp });
        var after = await contract.Cache.LookupAsync(Contract.Positional(Mlp, "digits", "train", 0, 1, 2));

        Assert.False(string.IsNullOrEmpty(checkpoint.Token));
        Assert.Equal((ulong)TrainItems, dropped.ItemsDropped);
        Assert.False(Contract.IsFound(after.Results[0].Found, 0));
        var stream = new StreamDatasetRequest { Dataset = "digits", Split = "train" };
        stream.Encoders.Add(Mlp);
        Assert.Equal(StatusCode.FailedPrecondition, await Contract.StatusOf(() => ReadAll(contract, stream)));
        Assert.Equal(StatusCode.NotFound, await Contract.StatusOf(() => contract.Admin.CancelJobAsync(new CancelJobRequest { JobId = "nope" }).ResponseAsync));
        Assert.Equal(StatusCode.NotFound, await Contract.StatusOf(() => contract.Admin.DropNamespaceAsync(new DropNamespaceRequest { Fingerprint = new string('0', 32) }).ResponseAsync));
        Assert.Equal(StatusCode.InvalidArgument, await Contract.StatusOf(() => contract.Admin.DropNamespaceAsync(new DropNamespaceRequest { Fingerprint = "xyz" }).ResponseAsync));
    }

    [Fact]
    public async Task Lookup_OfPrewarmedPositionalKeys_ReturnsTheStreamedEmbeddingsAndLabels()
    {
        await using var service = await InProcessService.StartAsync();
        var contract = new Contract(service.Channel);
        await Contract.PrewarmToEndAsync(contract.Admin, DigitsTrain(Mlp));
        var request = Contract.Positional(Mlp, "digits", "train", 0, 5);
        request.IncludeLabels = true;

        var response = await contract.Cache.LookupAsync(request);

        Assert.True(Contract.IsFound(response.Results[0].Found, 0) && Contract.IsFound(response.Results[0].Found, 1));
        var labels = DigitsTrainLabels();
        Assert.Equal([labels[0], labels[5]], response.Labels.Groups.GroupIds);
    }

    [Fact]
    public async Task Restart_OnTheSameSaveDir_ServesWithoutReencoding()
    {
        using var dir = new TempDirectory("restart");
        byte[] before;
        await using (var service = await InProcessService.StartAsync(dir.Path))
        {
            var contract = new Contract(service.Channel);
            await Contract.PrewarmToEndAsync(contract.Admin, DigitsTrain(Mlp));
            before = (await contract.Cache.LookupAsync(Contract.Positional(Mlp, "digits", "train", 3, 1000))).Results[0].Embeddings.ToByteArray();
        }

        await using (var service = await InProcessService.StartAsync(dir.Path))
        {
            var contract = new Contract(service.Channel);
            var after = (await contract.Cache.LookupAsync(Contract.Positional(Mlp, "digits", "train", 3, 1000))).Results[0];
            var request = new StreamDatasetRequest { Dataset = "digits", Split = "train", BatchSize = 500 };
            request.Encoders.Add(Mlp);
            var streamed = await ReadAll(contract, request);
            var stats = await contract.Admin.GetStatsAsync(new GetStatsRequest());

            Assert.Equal(before, after.Embeddings.ToByteArray());
            Assert.Equal(TrainItems, streamed.Sum(b => b.Indices.Count));
            Assert.Equal(0ul, stats.Namespaces.Single(n => n.Encoder == Mlp).Encoded);
        }
    }

    [Fact]
    public async Task GetStats_LabelItems_CountsEachStoredLabelOnce_AndSurvivesARestart()
    {
        using var dir = new TempDirectory("labels");
        await using (var service = await InProcessService.StartAsync(dir.Path))
        {
            var admin = new Contract(service.Channel).Admin;
            Assert.Equal(0ul, (await admin.GetStatsAsync(new GetStatsRequest())).LabelItems);

            await Contract.PrewarmToEndAsync(admin, DigitsTrain(Mlp));
            await Contract.PrewarmToEndAsync(admin, DigitsTrain(Mlp));

            Assert.Equal((ulong)TrainItems, (await admin.GetStatsAsync(new GetStatsRequest())).LabelItems);
        }

        await using (var service = await InProcessService.StartAsync(dir.Path))
        {
            var admin = new Contract(service.Channel).Admin;
            Assert.Equal((ulong)TrainItems, (await admin.GetStatsAsync(new GetStatsRequest())).LabelItems);

            var val = new PrewarmRequest { Dataset = "digits", Splits = { "val" }, Encoders = { Mlp } };
            await Contract.PrewarmToEndAsync(admin, val);

            Assert.Equal(1797ul, (await admin.GetStatsAsync(new GetStatsRequest())).LabelItems);
        }
    }

    [Fact]
    public async Task StreamDataset_DoubleBufferedBatches_AreContiguous_AndEachMatchesALookupOfItsIndices_EvenAfterAnEarlyStop()
    {
        await using var service = await InProcessService.StartAsync();
        var contract = new Contract(service.Channel);
        await Contract.PrewarmToEndAsync(contract.Admin, DigitsTrain(Mlp));
        var request = new StreamDatasetRequest { Dataset = "digits", Split = "train", BatchSize = 100, Shuffle = true, Seed = 5, Epoch = 1 };
        request.Encoders.Add(Mlp);

        // Stop after one batch while the next one is being prefetched: its pooled buffers must be given back
        // and later streams unaffected.
        using (var early = contract.Cache.StreamDataset(request))
            Assert.True(await early.ResponseStream.MoveNext(CancellationToken.None));

        var batches = await ReadAll(contract, request);

        Assert.Equal(Enumerable.Range(0, (TrainItems + 99) / 100).Select(i => (ulong)(i * 100)), batches.Select(b => b.Offset));
        Assert.Equal(TrainItems, batches.Sum(b => b.Indices.Count));
        foreach (var batch in batches)
        {
            var lookup = new LookupRequest { Keys = new KeyBatch { Positional = new PositionalKeys { Dataset = "digits", Split = "train" } } };
            lookup.Keys.Positional.Indices.Add(batch.Indices);
            lookup.Encoders.Add(Mlp);
            var expected = await contract.Cache.LookupAsync(lookup);
            Assert.Equal(expected.Results[0].Embeddings.ToByteArray(), batch.Results[0].Embeddings.ToByteArray());
        }
    }

    private static long[] DigitsTrainLabels() =>
        File.ReadLines(Path.Combine(RepoPaths.Root, "deploy", "datasets", "digits", "train.csv")).Skip(1)
            .Select(l => long.Parse(l[(l.LastIndexOf(',') + 1)..], CultureInfo.InvariantCulture)).ToArray();

    private static async Task<List<DatasetBatch>> ReadAll(Contract contract, StreamDatasetRequest request)
    {
        using var call = contract.Cache.StreamDataset(request);
        var batches = new List<DatasetBatch>();
        await foreach (var b in call.ResponseStream.ReadAllAsync())
            batches.Add(b);
        return batches;
    }
}
