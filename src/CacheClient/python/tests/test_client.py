"""The typed client against the real service: calls, zero-copy arrays, bit-identity with the .NET client, errors."""
import json

import numpy as np
import pytest
import torch

import embedcache
from embedcache import errors, keys

from conftest import ADMIN_KEY, ENCODERS, TRAINER_KEY


def test_encoders_report_name_dtype_and_input(client):
    by_name = {e.name: e for e in client.encoders()}
    for dtype, name in ENCODERS.items():
        e = by_name[name]
        assert (e.dtype, e.dim, e.input_kind, e.input_shape) == (dtype, 128, "float_vector", (64,))
        assert len(e.fingerprint) == 32
    assert by_name["random-minilm"].input_kind == "text"


def test_prewarm_yields_progress_and_a_second_run_encodes_nothing(admin, digits):
    assert (digits.processed, digits.total, digits.encoded) == (3 * 1797, 3 * 1797, 3 * 1797)
    again = list(admin.prewarm("digits", encoders=["random-mlp"], progress_bar=False))
    assert again[-1].state == "completed"
    assert (again[-1].encoded, again[-1].skipped) == (0, 1797)
    jobs = {j.job_id: j for j in admin.jobs()}
    assert jobs[digits.job_id].state == "completed"
    assert jobs[again[-1].job_id].dataset == "digits"


def test_stats_count_the_prewarmed_namespaces(admin, digits):
    stats = admin.stats()
    for name in ENCODERS.values():
        assert stats[name].items >= 1797
    assert stats["random-mlp"].hit_rate is None or 0 <= stats["random-mlp"].hit_rate <= 1


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_epoch_is_bit_identical_to_the_dotnet_clients(client, service, probe, digits, tmp_path, dtype):
    encoder = ENCODERS[dtype]
    summary = json.loads(probe.run("epoch", "--service", service.grpc, "--api-key", TRAINER_KEY, "--dataset", "digits",
                                   "--split", "train", "--encoder", encoder, "--batch-size", "200", "--seed", "11",
                                   "--epoch", "3", "--shuffle", "--out", str(tmp_path)))
    batches = list(client.stream_epoch("digits", "train", encoder, batch_size=200, shuffle=True, seed=11, epoch=3,
                                       include_labels=True))
    assert summary["items"] == sum(len(b.indices) for b in batches) == 1438
    assert summary["fingerprint"] == batches[0][encoder].fingerprint
    assert all(b[encoder].dtype == dtype for b in batches)
    python_bytes = b"".join(bytes(b[encoder].raw) for b in batches)
    assert python_bytes == (tmp_path / "embeddings.bin").read_bytes()
    assert np.concatenate([b.indices for b in batches]).tobytes() == (tmp_path / "indices.bin").read_bytes()
    assert np.concatenate([b.labels.groups for b in batches]).tobytes() == (tmp_path / "labels.bin").read_bytes()

    # The dataset class hands the same bytes to torch, in the stored dtype.
    ds = embedcache.EmbedCacheDataset("digits", "train", encoder, service=service.address, batch_size=200, seed=11,
                                      epoch=3, client_options={"api_key": TRAINER_KEY})
    tensors = [b["embeddings"] for b in ds]
    assert tensors[0].dtype == {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    as_bytes = b"".join((t.view(torch.int16) if dtype == "bfloat16" else t).numpy().tobytes() for t in tensors)
    assert as_bytes == python_bytes


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_embeddings_are_views_on_the_received_bytes(client, digits, dtype):
    batch = next(client.stream_epoch("digits", "val", ENCODERS[dtype], batch_size=64))
    e = batch[ENCODERS[dtype]]
    address = np.frombuffer(e.raw, dtype=np.uint8).ctypes.data
    array, tensor = e.numpy(), e.torch()
    assert array.shape == tuple(tensor.shape) == (64, 128)
    assert not array.flags.owndata and not array.flags.writeable
    assert array.ctypes.data == address
    assert tensor.data_ptr() == address
    expected = e.float32()
    assert np.array_equal(tensor.float().numpy(), expected)
    assert np.isfinite(expected).all() and np.abs(expected).sum() > 0


def test_found_masks_unpack_to_booleans_and_missing_rows_are_zero(client, digits):
    r = client.lookup(["random-mlp", "half"], keys.positional("digits", "train", [0, 1, 2]), include_labels=True)
    for name in ("random-mlp", "half"):
        assert r[name].found.dtype == np.bool_ and r[name].found.tolist() == [True, True, True]
    assert r.labels.found.tolist() == [True, True, True]
    # A split the cache knows nothing about: its keys are not found, rows and labels alike (a key past the end
    # of a split the cache does know is OUT_OF_RANGE instead, see test_errors_*).
    missing = client.lookup(["random-mlp", "half"], keys.positional("fortunes", "train", [0, 5]), include_labels=True)
    for name in ("random-mlp", "half"):
        assert missing[name].found.tolist() == [False, False]
        assert not missing[name].float32().any()
    assert missing.labels.found.tolist() == [False, False]
    # Found and missing in one batch: two custom keys stored by read-through, one never stored.
    stored = keys.tensors(np.random.default_rng(7).random((2, 64), dtype=np.float32))
    client.lookup("random-mlp", keys.custom([b"mask-a", b"mask-b"]), stored)
    mixed = client.lookup("random-mlp", keys.custom([b"mask-a", b"mask-never", b"mask-b"]))["random-mlp"]
    assert mixed.found.tolist() == [True, False, True]
    assert not mixed.float32()[1].any() and mixed.float32()[0].any()
    assert embedcache.unpack_mask(b"\x05\x01", 9).tolist() == [True, False, True, False, False, False, False, False, True]


def test_lookup_many_answers_in_order_over_one_stream(client, digits):
    batches = [keys.positional("digits", "val", range(i, i + 5)) for i in (0, 10, 20)]
    results = list(client.lookup_many("random-mlp", batches, include_labels=True))
    assert [r.request_id for r in results] == [1, 2, 3]
    unary = client.lookup("random-mlp", keys.positional("digits", "val", range(10, 15)))
    assert results[1]["random-mlp"].raw == unary["random-mlp"].raw


def test_content_keys_of_vectors_equal_the_services_and_the_dotnet_clients(client, probe, tmp_path):
    rows = np.random.default_rng(2024).random((6, 64), dtype=np.float32)  # never stored before
    features = keys.tensors(rows)
    local = keys.content(features)
    assert not client.lookup("random-mlp", local)["random-mlp"].found.any()

    # Read-through: the service hashes the features itself, encodes and stores under its keys ...
    filled = client.lookup("random-mlp", keys.content_from_features(), features)["random-mlp"]
    assert filled.found.all() and filled.encoded == 6
    # ... and the keys computed here find exactly those rows.
    again = client.lookup("random-mlp", local)["random-mlp"]
    assert again.found.all() and again.encoded == 0 and again.raw == filled.raw

    (tmp_path / "rows.f32").write_bytes(rows.tobytes())
    dotnet = probe.run("hash", "--tensors", str(tmp_path / "rows.f32"), "--shape", "64").split()
    assert dotnet == [local.content.hashes[i:i + 16].hex() for i in range(0, 96, 16)]


def test_content_keys_of_texts_equal_the_services_and_the_dotnet_clients(client, probe, tmp_path):
    texts = ["a frozen encoder", "naïve café — ünïcode ✓", "x"]
    features = keys.texts(texts)
    local = keys.content(features)
    assert not client.lookup("random-minilm", local)["random-minilm"].found.any()
    filled = client.lookup("random-minilm", keys.content_from_features(), features)["random-minilm"]
    assert filled.found.all() and filled.encoded == 3
    again = client.lookup("random-minilm", local)["random-minilm"]
    assert again.found.all() and again.raw == filled.raw

    (tmp_path / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    dotnet = probe.run("hash", "--texts", str(tmp_path / "texts.json")).split()
    assert dotnet == [keys.content_hash(t.encode("utf-8")).hex() for t in texts]


def test_read_through_with_custom_keys_encodes_once_then_serves_from_the_cache(client, digits, digits_csv):
    table = np.loadtxt(digits_csv, delimiter=",", skiprows=1, dtype=np.float32, max_rows=5)
    features = keys.tensors(table[:, :64])
    ids = keys.custom([f"digits-row-{i}" for i in range(5)])
    first = client.lookup("random-mlp", ids, features)["random-mlp"]
    assert first.found.all() and first.encoded == 5
    second = client.lookup("random-mlp", keys.custom([f"digits-row-{i}".encode() for i in range(5)]))["random-mlp"]
    assert second.found.all() and second.encoded == 0 and second.raw == first.raw
    # The same features under positional keys (prewarmed from the same file) gave the same embeddings.
    positional = client.lookup("random-mlp", keys.positional("digits", "train", range(5)))["random-mlp"]
    np.testing.assert_allclose(first.float32(), positional.float32(), rtol=1e-5, atol=1e-5)


def test_errors_carry_the_status_and_the_services_message(client, admin, digits):
    with pytest.raises(errors.NotFound) as e:
        client.lookup("no-such-encoder", keys.positional("digits", "train", [0]))
    assert e.value.code.name == "NOT_FOUND" and "no-such-encoder" in e.value.message
    with pytest.raises(errors.OutOfRange) as e:
        client.lookup("random-mlp", keys.positional("digits", "train", [0, 10 ** 9]))
    assert e.value.code.name == "OUT_OF_RANGE" and "1438 items" in e.value.message
    assert isinstance(e.value, LookupError) and isinstance(e.value, embedcache.EmbedCacheError)

    with pytest.raises(errors.InvalidArgument) as e:
        client.lookup("random-mlp", keys.custom(["a", "b"]), keys.tensors(np.zeros((2, 3), np.float32)))
    assert e.value.status == "INVALID_ARGUMENT" and "feature" in e.value.message.lower()

    with pytest.raises(errors.FailedPrecondition) as e:
        list(client.stream_epoch("digits", "train", "cold"))
    assert "prewarm" in e.value.message

    with pytest.raises(errors.NotFound) as e:
        list(admin.prewarm("no-such-dataset", progress_bar=False))
    assert "no-such-dataset" in e.value.message


def test_api_keys_are_required_and_admin_calls_need_an_admin_key(service, client):
    with embedcache.Client(service.address) as anonymous, pytest.raises(errors.Unauthenticated) as e:
        anonymous.encoders()
    assert e.value.message
    with pytest.raises(errors.PermissionDenied):
        client.stats()
    with embedcache.Client(service.address, api_key=ADMIN_KEY) as admin:
        assert admin.encoders()


def test_an_unreachable_service_raises_unavailable_after_the_retries():
    with embedcache.Client("127.0.0.1:1", max_attempts=2, initial_backoff=0.01, timeout=20) as c:
        with pytest.raises(errors.Unavailable) as e:
            c.encoders()
    assert isinstance(e.value, ConnectionError)


def test_prewarm_feeds_a_tqdm_bar_when_tqdm_is_there_and_none_when_asked_not_to(admin, digits, monkeypatch):
    import sys
    import types

    bars = []

    class FakeBar:
        def __init__(self, total=None, unit=None, desc=None, disable=None):
            self.total, self.unit, self.desc, self.disable = total, unit, desc, disable
            self.n, self.postfix, self.refreshes, self.closed = 0, {}, 0, False
            bars.append(self)

        def set_postfix(self, refresh=True, **values):
            self.postfix = values

        def refresh(self):
            self.refreshes += 1

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeBar))
    progress = list(admin.prewarm("digits", encoders=["half"]))
    assert len(bars) == 1 and bars[0].closed and bars[0].desc == "prewarm digits" and bars[0].disable is None
    assert (bars[0].n, bars[0].total) == (progress[-1].processed, progress[-1].total) == (1797, 1797)
    assert bars[0].postfix["cached"] == 1797 and bars[0].postfix["state"] == "completed"
    assert bars[0].refreshes == len(progress)
    list(admin.prewarm("digits", encoders=["half"], progress_bar=False))
    assert len(bars) == 1

    # Without tqdm, no bar and no error.
    monkeypatch.setitem(sys.modules, "tqdm", None)
    assert list(admin.prewarm("digits", encoders=["half"]))[-1].state == "completed"


def test_custom_keys_from_an_extractor_function(client, digits):
    rows = np.random.default_rng(31).random((3, 64), dtype=np.float32)
    items = [{"id": 901, "x": rows[0]}, {"id": 902, "x": rows[1]}, {"id": 903, "x": rows[2]}]
    extract = lambda item: f"extracted-{item['id']}"
    filled = client.lookup("random-mlp", keys.custom(items, extract), keys.tensors(np.stack([i["x"] for i in items])))
    assert filled["random-mlp"].encoded == 3
    by_bytes = client.lookup("random-mlp", keys.custom([b"extracted-903", b"extracted-901"]))["random-mlp"]
    assert by_bytes.found.all() and by_bytes.encoded == 0
    assert np.array_equal(by_bytes.numpy(), filled["random-mlp"].numpy()[[2, 0]])
