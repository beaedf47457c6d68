"""The trainer's side of StreamDatasetShared: a cached epoch whose rows arrive in a shared-memory ring.

The protocol (protos/embedcache/v1/embedcache.proto, and the .NET client's SharedEpochStream.cs): the trainer
sends ``open``; the service answers ``ring`` (a file under /dev/shm, owner-only) and the trainer opens it and
acks position 0, after which the service unlinks it; each ``batch`` event is a DatasetBatch without its
embeddings plus one span (running position, length) per encoder, where the rows are in the ring. The trainer
acks a position once it is done with everything before it, and the service reuses that space.

**Lifetime.** Each span is mapped on its own (a private, copy-on-write mapping of the ring file's pages), so
the embeddings of a batch are views on the ring: nothing is copied on the way in. A batch's space is given back
to the service one batch later: when the caller asks for batch n+1, batch n-1 is released (and batch n as well
if nothing refers to it any more). Released means: if nothing refers to its bytes (its mappings close), its
space is acked as is; if something still does (an array, tensor or memoryview the caller kept), the mapping is
made private first, i.e. the kernel copies those pages, and only then acked. So a kept view never sees ring
space the service reuses: it keeps the rows it was handed, for as long as it is kept, at the cost of one copy
of that batch. Batches never released (the epoch's last ones, or those held when the caller stops iterating)
are never acked, so never overwritten either.

The service cuts off a trainer that keeps the ring full (does not ask for the next batch) for longer than its
SharedMemory:SlowReaderSeconds, with RESOURCE_EXHAUSTED.
"""
from __future__ import annotations

import mmap
import os
import queue
from typing import Iterator, List, Optional

import grpc
import numpy as np

from . import errors
from .arrays import DTYPES, Embeddings, Labels
from .v1 import embedcache_pb2 as pb

_PAGE = mmap.ALLOCATIONGRANULARITY


def _internal(message: str) -> errors.Internal:
    return errors.Internal(grpc.StatusCode.INTERNAL, message, "StreamDatasetShared")


class Ring:
    """The service's ring file, opened read-only (the file descriptor outlives the file's name)."""

    def __init__(self, path: str, size: int):
        if size <= 0 or size > 1 << 40:
            raise _internal(f"the service's shared-memory ring has an impossible size ({size})")
        try:
            self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            raise errors.PermissionDenied(
                grpc.StatusCode.PERMISSION_DENIED,
                f"cannot open the service's shared-memory ring {path} ({e.strerror}): the trainer must run as the "
                f"service's user (or its socket group), on its host", "StreamDatasetShared") from None
        if os.fstat(self._fd).st_size < size:
            os.close(self._fd)
            raise _internal(f"the service's shared-memory ring {path} is smaller than the {size} bytes it announced")
        self.size = size
        #: Batches whose pages had to be made private because the caller still held views of them.
        self.privatized = 0

    def map(self, position: int, length: int):
        """(the span's rows as a read-only memoryview, its mapping or None)."""
        offset = position % self.size
        if length > self.size - offset:
            raise _internal(f"a shared-memory span ({position}, {length}) crosses the end of the {self.size}-byte ring")
        if length == 0:
            return memoryview(b""), None
        start = offset - offset % _PAGE
        # ACCESS_COPY is MAP_PRIVATE: the pages are the ring's (the service's writes show) until written to here.
        mapping = mmap.mmap(self._fd, offset - start + length, access=mmap.ACCESS_COPY, offset=start)
        view = memoryview(mapping)[offset - start:offset - start + length].toreadonly()
        return view, mapping

    @staticmethod
    def try_close(mappings: List[mmap.mmap]) -> List[mmap.mmap]:
        """Closes the mappings nothing refers to any more; returns those still in use (exported)."""
        kept = []
        for mapping in mappings:
            try:
                mapping.close()
            except BufferError:
                kept.append(mapping)
        return kept

    def privatize(self, mappings: List[mmap.mmap]) -> None:
        """Gives this process its own copy of the mappings' pages (still in use: views of them were kept)."""
        if not mappings:
            return
        for mapping in mappings:
            # Writing to a page of a private mapping copies it: the views keep their bytes whatever the service
            # writes to the ring from now on.
            pages = np.frombuffer(mapping, dtype=np.uint8)[::_PAGE]
            pages[:] = pages.copy()
            del pages
        self.privatized += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _receive(ring: Ring, event: pb.SharedStreamEvent, make_batch):
    """(the EpochBatch of a ``batch`` event, its mappings, the span of ring positions it holds)."""
    if event.WhichOneof("kind") != "batch":
        raise _internal("the service sent a shared-memory event that is not a batch")
    shared = event.batch
    m = shared.batch
    if len(shared.rows) != len(m.results):
        raise _internal(f"a shared-memory batch names {len(shared.rows)} spans for {len(m.results)} results")
    rows, mappings = [], []
    end, total, longest = 0, 0, 0
    for span in shared.rows:
        view, mapping = ring.map(span.position, span.length)
        rows.append(view)
        if mapping is not None:
            mappings.append(mapping)
        end = max(end, span.position + span.length)
        total += span.length
        longest = max(longest, span.length)
    count = len(m.indices)
    indices = np.array(m.indices, dtype=np.uint64) if count else np.zeros(0, dtype=np.uint64)
    labels = Labels.from_message(m.labels, count) if m.HasField("labels") else None
    embeddings = {}
    for r, raw in zip(m.results, rows):
        if r.dtype not in DTYPES:
            raise ValueError(f"encoder {r.encoder!r} sent an unknown dtype {r.dtype}")
        embeddings[r.encoder] = Embeddings(r.encoder, r.fingerprint, r.dim, DTYPES[r.dtype][0], count, raw, r.found, r.encoded)
    return make_batch(m, indices, labels, embeddings), mappings, end, total + longest


def read_epoch(method, request: pb.StreamDatasetRequest, ring_bytes: int, timeout: Optional[float], metadata,
               make_batch, stats: Optional[dict] = None) -> Iterator:
    """One StreamDatasetShared call: yields EpochBatch (built by ``make_batch``); raises grpc.RpcError or EmbedCacheError.

    Release (see the module's doc): when the caller asks for batch n+1, batch n-1 is given back (closed, or made
    private if views of it are still held), and batch n too if nothing refers to it already or holding it could
    keep the service from placing batch n+1; else n waits for the next request. One batch of slack lets the usual
    ``for batch in ...:`` loop, which still holds batch n while it asks for n+1, run without a copy.
    After the epoch's last batch nothing is acknowledged: the trainer closes its side and the service is done
    with the ring. A CANCELLED status not caused here (the service or its connection went away) is raised as
    UNAVAILABLE, so the caller's resume loop takes it.
    """
    acks: "queue.SimpleQueue[Optional[pb.SharedStreamMessage]]" = queue.SimpleQueue()

    def messages():
        yield pb.SharedStreamMessage(open=pb.SharedStreamOpen(request=request, ring_bytes=ring_bytes))
        while True:
            m = acks.get()
            if m is None:
                return
            yield m

    def ack(position: int) -> None:
        acks.put(pb.SharedStreamMessage(ack=pb.SharedStreamAck(released=position)))

    call = method(messages(), timeout=timeout, metadata=metadata)
    ring: Optional[Ring] = None
    held = None  # (mappings still open, end position) of the batch yielded before the last one
    released = 0
    try:
        try:
            first = next(call, None)
            if first is None:
                raise _internal("the service ended the shared-memory stream before naming its ring")
            if first.WhichOneof("kind") != "ring":
                raise _internal("the service's first shared-memory event is not `ring`")
            ring = Ring(first.ring.path, first.ring.size)
            ack(0)  # opened: the service unlinks the file now
            for event in call:
                batch, mappings, end, next_needs = _receive(ring, event, make_batch)
                last = batch.offset + batch.elements >= batch.total
                yield batch
                del batch
                if last:
                    acks.put(None)  # the service writes no more: nothing needs to be given back
                    continue
                if held is not None:
                    ring.privatize(ring.try_close(held[0]))
                    released = held[1]
                    held = None
                mappings = ring.try_close(mappings)
                if mappings and end - released + next_needs <= ring.size:
                    held = (mappings, end)
                else:
                    ring.privatize(mappings)
                    released = end
                ack(released)
                del mappings
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED:
                raise errors.Unavailable(grpc.StatusCode.UNAVAILABLE,
                                         f"the shared-memory stream broke off: the service or its connection went away ({e.details()})",
                                         "StreamDatasetShared") from None
            raise
    finally:
        # Batches not given back are never overwritten: the service reuses only acknowledged space.
        acks.put(None)
        call.cancel()
        if ring is not None:
            if stats is not None:
                stats["privatized"] = stats.get("privatized", 0) + ring.privatized
            ring.close()  # mappings still in use keep the pages
