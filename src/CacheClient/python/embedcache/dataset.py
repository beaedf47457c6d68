"""``EmbedCacheDataset``: a cached split as a ``torch.utils.data.IterableDataset``, sharded across DDP ranks and workers."""
from __future__ import annotations

import os
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .client import Client, EpochBatch


class EmbedCacheDataset(IterableDataset):
    """Streams a cached split from an EmbedCache service, epoch by epoch: embeddings and labels.

    It yields **batches** of ``batch_size`` items, so use it with ``DataLoader(ds, batch_size=None)``.
    Each batch is a dict:

    * ``"embeddings"``: a ``batch × dim`` tensor — or, when ``encoders`` is a list, a dict of them by
      encoder name — in the stored dtype (float32, float16 or bfloat16), a view on the received bytes
      (read-only: do not write into it); ``dtype=torch.float32`` converts instead;
    * ``"labels"``: int64 group ids (group datasets), or ``"pairs"``: a dict ``a``, ``b``, ``score``,
      ``subgroup`` (pair datasets, whose epoch order is over pairs);
    * ``"indices"``: the items' indices in the split (int64), and ``"offset"``: the batch's position in
      the epoch order.

    **Order and sharding.** The order of an epoch is the service's, a pure function of ``(seed, epoch)``
    (``set_epoch(n)`` before each epoch, as with ``DistributedSampler``). The epoch, from
    ``start_offset`` to its end, is cut into batches; the batches are split into contiguous runs, one
    per shard, where the shards are every DataLoader worker of every DDP rank (rank-major). So every
    element appears exactly once per epoch across all ranks and workers; shards' batch counts differ
    by at most one, and every batch but the epoch's last is full. Rank and world size come from
    ``torch.distributed`` when it is initialised, else from ``rank``/``world_size`` (default 0 / 1).

    **Resume.** ``set_epoch(n, start_offset=k)`` (or ``start_offset=k`` here) starts the epoch at
    position ``k`` of its order: the elements ``k..total-1`` are split over the shards as above. With one
    shard (one process, ``num_workers`` ≤ 1), ``k`` is the number of elements consumed so far.

    :param service: a :class:`embedcache.Client`'s address (``host:port``, ``unix:/path`` …), or None for
        ``$EMBEDCACHE_SERVICE``; ``client_options`` are the other :class:`~embedcache.Client` arguments
        (``api_key``, ``tls``, ``shared_memory``, …). Each process (worker) opens its own connection. On a
        ``unix:`` address (the service on this host) epochs come through the service's shared-memory ring
        (``client_options={"shared_memory": "off"}`` keeps gRPC); the tensors are then views on the ring, valid
        for as long as they are referenced (see :meth:`embedcache.Client.stream_epoch`).
    """

    def __init__(self, dataset: str, split: str, encoders: Union[str, Sequence[str]], *, service: Optional[str] = None,
                 client_options: Optional[Dict[str, Any]] = None, batch_size: int = 256, shuffle: bool = True,
                 seed: int = 0, epoch: int = 0, start_offset: int = 0, labels: bool = True,
                 dtype: Optional[torch.dtype] = None, fill_missing: bool = False,
                 rank: Optional[int] = None, world_size: Optional[int] = None):
        super().__init__()
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.dataset = dataset
        self.split = split
        self.encoders = encoders
        self.service = service
        self.client_options = dict(client_options or {})
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = epoch
        self.start_offset = start_offset
        self.labels = labels
        self.dtype = dtype
        self.fill_missing = fill_missing
        self.rank = rank
        self.world_size = world_size
        self._total: Optional[int] = None
        self._client: Optional[Client] = None
        self._client_pid: Optional[int] = None

    # -- epochs ---------------------------------------------------------------------------------

    def set_epoch(self, epoch: int, start_offset: int = 0) -> None:
        """Selects the epoch (its order) to stream next, and where in it to start."""
        self.epoch = epoch
        self.start_offset = start_offset

    @property
    def total(self) -> int:
        """Elements in the split (items, or pairs for pair datasets); asks the service once."""
        if self._total is None:
            probe = self._connect().stream_epoch(self.dataset, self.split, self.encoders, batch_size=1,
                                                 fill_missing=self.fill_missing)
            try:
                first = next(probe, None)
            finally:
                probe.close()
            self._total = 0 if first is None else int(first.total)
        return self._total

    def shard(self) -> Tuple[int, int]:
        """(this shard, number of shards) for the calling process: rank × workers + worker."""
        rank, world = self._rank_and_world()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return rank * workers + worker, world * workers

    def shard_range(self, shard: int, shards: int) -> Tuple[int, int]:
        """The ``[start, stop)`` positions of the epoch order that ``shard`` of ``shards`` streams."""
        if not 0 <= shard < shards:
            raise ValueError(f"shard {shard} of {shards}")
        total = self.total
        start = min(self.start_offset, total)
        batches = -(-(total - start) // self.batch_size)
        first, last = shard * batches // shards, (shard + 1) * batches // shards
        return start + first * self.batch_size, min(total, start + last * self.batch_size)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        start, stop = self.shard_range(*self.shard())
        if start >= stop:
            return
        single = isinstance(self.encoders, str)
        for batch in self._connect().stream_epoch(
                self.dataset, self.split, self.encoders, batch_size=self.batch_size, shuffle=self.shuffle, seed=self.seed,
                epoch=self.epoch, start_offset=start, stop_offset=stop, include_labels=self.labels,
                fill_missing=self.fill_missing):
            yield self._to_torch(batch, single)

    # -- helpers --------------------------------------------------------------------------------

    def _to_torch(self, batch: EpochBatch, single: bool) -> Dict[str, Any]:
        tensors = {}
        for name, e in batch.embeddings.items():
            t = e.torch()
            tensors[name] = t if self.dtype is None or t.dtype == self.dtype else t.to(self.dtype)
        out: Dict[str, Any] = {
            "embeddings": next(iter(tensors.values())) if single else tensors,
            "indices": torch.from_numpy(batch.indices.view(np.int64)),
            "offset": batch.offset,
        }
        if batch.labels is not None:
            if batch.labels.groups is not None:
                out["labels"] = torch.from_numpy(batch.labels.groups)
            if batch.labels.pairs is not None:
                p = batch.labels.pairs
                out["pairs"] = {"a": torch.from_numpy(p.a.view(np.int64)), "b": torch.from_numpy(p.b.view(np.int64)),
                                "score": torch.from_numpy(p.score), "subgroup": torch.from_numpy(p.subgroup)}
        return out

    def _rank_and_world(self) -> Tuple[int, int]:
        if self.rank is not None or self.world_size is not None:
            rank, world = self.rank or 0, self.world_size or 1
        elif torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            rank, world = 0, 1
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in a world of {world}")
        return rank, world

    def _connect(self) -> Client:
        # One connection per process: a channel must not cross a fork into DataLoader workers.
        if self._client is None or self._client_pid != os.getpid():
            self._client = Client(self.service, **self.client_options)
            self._client_pid = os.getpid()
        return self._client

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_client"] = None
        state["_client_pid"] = None
        return state
