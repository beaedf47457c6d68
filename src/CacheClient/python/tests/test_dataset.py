"""EmbedCacheDataset: exactly-once sharding over DDP ranks and DataLoader workers, epochs, resume, dtypes."""
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader

import embedcache

from conftest import TRAINER_KEY

TRAIN_ITEMS = 1438


def make(service, **kwargs):
    kwargs.setdefault("batch_size", 100)
    kwargs.setdefault("seed", 5)
    return embedcache.EmbedCacheDataset("digits", "train", kwargs.pop("encoders", "random-mlp"), service=service.address,
                                        client_options={"api_key": TRAINER_KEY}, **kwargs)


def epoch_order(client, epoch, seed=5):
    return np.concatenate([b.indices for b in client.stream_epoch("digits", "train", "random-mlp", shuffle=True, seed=seed,
                                                                  epoch=epoch, batch_size=500)]).astype(np.int64)


def indices_of(batches):
    return np.concatenate([b["indices"].numpy() for b in batches]) if batches else np.zeros(0, np.int64)


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_ranks_cover_the_epoch_exactly_once_in_order(service, client, digits, world_size):
    order = epoch_order(client, epoch=2)
    shards = []
    for rank in range(world_size):
        ds = make(service, rank=rank, world_size=world_size)
        ds.set_epoch(2)
        shards.append(list(ds))
    counts = [len(indices_of(s)) for s in shards]
    assert sum(counts) == TRAIN_ITEMS and max(counts) - min(counts) <= 100
    # Rank-major contiguous runs of whole batches: concatenated, they are the epoch's order.
    assert np.array_equal(np.concatenate([indices_of(s) for s in shards]), order)
    assert all(len(b["indices"]) == 100 for s in shards for b in s[:-1])
    labels = np.concatenate([b["labels"].numpy() for s in shards for b in s])
    assert labels.shape == (TRAIN_ITEMS,) and set(labels.tolist()) == set(range(10))


def test_dataloader_workers_of_each_rank_share_the_epoch_exactly_once(service, client, digits):
    order = epoch_order(client, epoch=1)
    seen = []
    for rank in range(2):
        ds = make(service, rank=rank, world_size=2, batch_size=64)
        ds.set_epoch(1)
        loader = DataLoader(ds, batch_size=None, num_workers=2)
        for batch in loader:
            assert batch["embeddings"].shape[1] == 128
            seen.append(batch["indices"].numpy())
    seen = np.concatenate(seen)
    assert len(seen) == TRAIN_ITEMS
    assert np.array_equal(np.sort(seen), np.sort(order))


def _ddp_rank(rank, world_size, init_file, service_address, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        ds = embedcache.EmbedCacheDataset("digits", "train", "random-mlp", service=service_address, batch_size=128, seed=5,
                                          client_options={"api_key": TRAINER_KEY})
        ds.set_epoch(4)
        assert ds.shard() == (rank, world_size)
        np.save(os.path.join(out_dir, f"rank{rank}.npy"), indices_of(list(ds)))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_torch_distributed_ranks_are_detected_and_cover_the_epoch(service, client, digits, tmp_path):
    world_size = 2
    mp.spawn(_ddp_rank, args=(world_size, str(tmp_path / "init"), service.address, str(tmp_path)), nprocs=world_size)
    parts = [np.load(tmp_path / f"rank{r}.npy") for r in range(world_size)]
    assert np.array_equal(np.concatenate(parts), epoch_order(client, epoch=4))


def test_set_epoch_selects_the_services_order_for_that_epoch(service, client, digits):
    ds = make(service)
    ds.set_epoch(0)
    first = indices_of(list(ds))
    ds.set_epoch(1)
    second = indices_of(list(ds))
    ds.set_epoch(0)
    assert np.array_equal(indices_of(list(ds)), first)
    assert np.array_equal(first, epoch_order(client, 0)) and np.array_equal(second, epoch_order(client, 1))
    assert not np.array_equal(first, second)
    assert np.array_equal(np.sort(first), np.arange(TRAIN_ITEMS))


@pytest.mark.parametrize("world_size", [1, 3])
def test_resume_from_an_offset_yields_the_rest_of_the_epoch(service, client, digits, world_size):
    order = epoch_order(client, epoch=7)
    resumed = []
    for rank in range(world_size):
        ds = make(service, rank=rank, world_size=world_size)
        ds.set_epoch(7, start_offset=333)
        batches = list(ds)
        assert batches[0]["offset"] == ds.shard_range(rank, world_size)[0]
        resumed.append(indices_of(batches))
    assert np.array_equal(np.concatenate(resumed), order[333:])


def test_resume_after_an_interrupted_single_process_epoch_loses_and_repeats_nothing(service, client, digits):
    ds = make(service, batch_size=50)
    ds.set_epoch(9)
    consumed = []
    for i, batch in enumerate(ds):
        consumed.append(batch["indices"].numpy())
        if i == 6:
            break  # "crash" after 7 batches
    done = sum(len(c) for c in consumed)
    restarted = make(service, batch_size=50)
    restarted.set_epoch(9, start_offset=done)
    consumed.append(indices_of(list(restarted)))
    assert np.array_equal(np.concatenate(consumed), epoch_order(client, 9))


def test_float16_and_bfloat16_stay_views_unless_a_dtype_is_asked_for(service, client, digits):
    both = make(service, encoders=["half", "bf"], shuffle=False, batch_size=300)
    batch = next(iter(both))
    assert batch["embeddings"]["half"].dtype == torch.float16
    assert batch["embeddings"]["bf"].dtype == torch.bfloat16
    converted = next(iter(make(service, encoders="bf", shuffle=False, batch_size=300, dtype=torch.float32)))
    assert converted["embeddings"].dtype == torch.float32
    assert torch.equal(converted["embeddings"], batch["embeddings"]["bf"].float())
    reference = client.lookup("bf", embedcache.keys.positional("digits", "train", range(300)))["bf"].float32()
    assert np.array_equal(converted["embeddings"].numpy(), reference)


def test_a_shard_without_batches_yields_nothing(service, digits):
    # 1438 items in batches of 1000 are 2 batches: of 3 ranks, rank 0 gets none.
    ranges = [make(service, batch_size=1000).shard_range(r, 3) for r in range(3)]
    assert ranges == [(0, 0), (0, 1000), (1000, TRAIN_ITEMS)]
    assert list(make(service, batch_size=1000, rank=0, world_size=3)) == []
    assert len(indices_of(list(make(service, batch_size=1000, rank=2, world_size=3)))) == TRAIN_ITEMS - 1000
