"""Epochs over the shared-memory ring (StreamDatasetShared, on the service's Unix socket) against the gRPC path.

The session's service (conftest.py) listens on a Unix socket too, with SharedMemory:SlowReaderSeconds=3.
"""
import hashlib
import json
import mmap
import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import embedcache
from embedcache import errors

from conftest import ENCODERS, TRAINER_KEY

TRAIN_ITEMS = 1438


@pytest.fixture(scope="module")
def local(service):
    assert service.unix_address is not None, service.output
    with embedcache.Client(service.unix_address, api_key=TRAINER_KEY, shared_memory="require") as c:
        yield c


def on_ring(e: embedcache.Embeddings) -> bool:
    return isinstance(e.raw, memoryview) and isinstance(e.raw.obj, mmap.mmap)


def summary(batches, encoders):
    """Everything a batch carries, as bytes: offsets, indices, labels, found masks and rows per encoder."""
    return [(b.offset, b.total, b.indices.tobytes(), b.labels.groups.tobytes(), b.labels.found.tobytes(),
             *[(b[e].fingerprint, b[e].dtype, b[e].dim, b[e].found.tobytes(), bytes(b[e].raw)) for e in encoders])
            for b in batches]


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_shared_memory_epochs_are_bit_identical_to_grpc_with_labels_shuffle_and_resume(local, client, digits, dtype):
    encoder = ENCODERS[dtype]
    for start in (0, 333):
        epoch = dict(batch_size=128, shuffle=True, seed=3, epoch=2, start_offset=start, include_labels=True)
        kept = list(local.stream_epoch("digits", "train", encoder, **epoch))  # every batch kept: copied as released
        assert local.epoch_transport == "shared-memory"
        assert all(on_ring(b[encoder]) for b in kept)
        over_grpc = list(client.stream_epoch("digits", "train", encoder, **epoch))
        assert client.epoch_transport == "grpc"
        assert summary(kept, [encoder]) == summary(over_grpc, [encoder])
        assert sum(len(b.indices) for b in kept) == TRAIN_ITEMS - start and kept[0].offset == start
        torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
        assert kept[0][encoder].torch().dtype == torch_dtype
        assert np.array_equal(kept[-1][encoder].float32(), over_grpc[-1][encoder].float32())
    # Unshuffled, several encoders in one batch.
    names = list(ENCODERS.values())
    plain = dict(batch_size=500, include_labels=True)
    assert summary(local.stream_epoch("digits", "val", names, **plain), names) == \
        summary(client.stream_epoch("digits", "val", names, **plain), names)


def test_a_loop_that_drops_its_batches_copies_nothing_and_one_that_keeps_them_keeps_their_bytes(service, client, digits):
    names = list(ENCODERS.values())  # 1 KiB a row: an epoch is 1.4 MiB, more than the 1 MiB ring, which wraps
    epoch = dict(batch_size=100, shuffle=True, seed=8, epoch=1, include_labels=True)
    expected = summary(client.stream_epoch("digits", "train", names, **epoch), names)
    with embedcache.Client(service.unix_address, api_key=TRAINER_KEY, shared_memory_ring_bytes=1 << 20) as c:
        # The usual loop: each batch is used, then dropped when the loop moves on. Zero copies.
        digests = []
        for batch in c.stream_epoch("digits", "train", names, **epoch):
            x = batch["random-mlp"].torch()
            assert x.data_ptr() == np.frombuffer(batch["random-mlp"].raw, np.uint8).ctypes.data
            digests.append(hashlib.sha256(b"".join(bytes(batch[e].raw) for e in names)).hexdigest())
        assert c.epoch_transport == "shared-memory" and c.shared_memory_stats["privatized"] == 0
        assert digests == [hashlib.sha256(b"".join(s[5 + k][4] for k in range(3))).hexdigest() for s in expected]

        # Kept views (arrays and tensors of every batch, the batches themselves dropped) keep their rows although
        # the service has written later batches over the same ring offsets since.
        kept = [(b.indices, {e: (b[e].numpy(), b[e].torch()) for e in names})
                for b in c.stream_epoch("digits", "train", names, **epoch)]
        assert c.shared_memory_stats["privatized"] >= len(kept) - 2
        assert [i.tobytes() for i, _ in kept] == [s[2] for s in expected]
        for (_, views), s in zip(kept, expected):
            for k, e in enumerate(names):
                array, tensor = views[e]
                assert array.tobytes() == s[5 + k][4]
                assert (tensor.view(torch.int16) if tensor.dtype == torch.bfloat16 else tensor).numpy().tobytes() == s[5 + k][4]


def test_the_dotnet_client_reads_the_same_bytes_over_shared_memory(local, service, probe, digits, tmp_path):
    encoder = ENCODERS["bfloat16"]
    out = json.loads(probe.run("epoch", "--service", service.unix_address, "--shared", "require", "--api-key", TRAINER_KEY,
                               "--dataset", "digits", "--split", "train", "--encoder", encoder, "--batch-size", "200",
                               "--seed", "4", "--epoch", "1", "--shuffle", "--out", str(tmp_path)))
    batches = list(local.stream_epoch("digits", "train", encoder, batch_size=200, shuffle=True, seed=4, epoch=1,
                                      include_labels=True))
    assert out["items"] == TRAIN_ITEMS
    assert b"".join(bytes(b[encoder].raw) for b in batches) == (tmp_path / "embeddings.bin").read_bytes()
    assert np.concatenate([b.indices for b in batches]).tobytes() == (tmp_path / "indices.bin").read_bytes()
    assert np.concatenate([b.labels.groups for b in batches]).tobytes() == (tmp_path / "labels.bin").read_bytes()


def test_the_dataset_takes_shared_memory_on_a_unix_address_and_covers_the_epoch_exactly_once(service, client, digits):
    def make(address, rank, world_size, **options):
        ds = embedcache.EmbedCacheDataset("digits", "train", "half", service=address, batch_size=64, seed=6,
                                          rank=rank, world_size=world_size,
                                          client_options={"api_key": TRAINER_KEY, **options})
        ds.set_epoch(3, start_offset=100)
        return ds

    order = np.concatenate([b.indices for b in client.stream_epoch("digits", "train", "half", shuffle=True, seed=6, epoch=3,
                                                                   batch_size=500)]).astype(np.int64)
    for world_size in (1, 3):
        seen, rows = [], []
        for rank in range(world_size):
            for batch in DataLoader(make(service.unix_address, rank, world_size, shared_memory="require"),
                                    batch_size=None, num_workers=2):
                seen.append(batch["indices"].numpy())
                rows.append(batch["embeddings"].numpy().tobytes())
        seen = np.concatenate(seen)
        assert len(seen) == TRAIN_ITEMS - 100 and np.array_equal(np.sort(seen), np.sort(order[100:]))
        over_grpc = {int(b["offset"]): b["embeddings"].numpy().tobytes()
                     for rank in range(world_size) for b in make(service.address, rank, world_size)}
        assert sorted(rows) == sorted(over_grpc.values())


def test_require_without_a_unix_socket_is_a_clear_error_and_off_keeps_grpc(service, digits):
    with embedcache.Client(service.address, api_key=TRAINER_KEY, shared_memory="require") as tcp:
        with pytest.raises(errors.FailedPrecondition) as e:
            next(tcp.stream_epoch("digits", "train", "random-mlp"))
        assert "require" in e.value.message and "Unix socket" in e.value.message and service.address in e.value.message
        assert next(tcp.stream_epoch("digits", "train", "random-mlp", batch_size=10, shared_memory="auto")).total == TRAIN_ITEMS
        assert tcp.epoch_transport == "grpc"
    with embedcache.Client(service.unix_address, api_key=TRAINER_KEY, shared_memory="off") as off:
        b = next(off.stream_epoch("digits", "train", "random-mlp", batch_size=10))
        assert off.epoch_transport == "grpc" and not on_ring(b["random-mlp"])
    with pytest.raises(ValueError):
        embedcache.Client(service.address, shared_memory="always")


def test_shared_memory_errors_carry_the_services_status(local, service, digits):
    with pytest.raises(errors.FailedPrecondition) as e:  # never prewarmed
        list(local.stream_epoch("digits", "train", "cold"))
    assert "prewarm" in e.value.message
    with pytest.raises(errors.NotFound):
        list(local.stream_epoch("digits", "train", "no-such-encoder"))
    with embedcache.Client(service.unix_address, api_key=TRAINER_KEY, shared_memory_ring_bytes=4096) as tiny:
        with pytest.raises(errors.InvalidArgument) as e:
            list(tiny.stream_epoch("digits", "train", "random-mlp"))
        assert "ring_bytes" in e.value.message
    with embedcache.Client(service.unix_address, api_key="", max_attempts=1) as anonymous:
        with pytest.raises(errors.Unauthenticated):
            list(anonymous.stream_epoch("digits", "train", "random-mlp"))


def test_a_reader_that_keeps_the_ring_full_is_cut_off_with_resource_exhausted(service, digits):
    names = list(ENCODERS.values())
    with embedcache.Client(service.unix_address, api_key=TRAINER_KEY, shared_memory_ring_bytes=1 << 20, max_attempts=1) as c:
        batches = c.stream_epoch("digits", "train", names, batch_size=100)
        first = next(batches)
        time.sleep(5)  # the service has filled the 1 MiB ring and waits for space: SlowReaderSeconds is 3
        with pytest.raises(errors.ResourceExhausted) as e:
            for _ in batches:
                pass
        assert "SlowReaderSeconds" in e.value.message
        assert first["random-mlp"].float32().any()  # the first batch, never released, is still intact
