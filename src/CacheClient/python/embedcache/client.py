"""The typed client: one gRPC channel to an EmbedCache service and its calls."""
from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import grpc
import numpy as np

from . import _shared, _wire, errors
from .arrays import DTYPES, Embeddings, Labels, Pairs
from .v1 import embedcache_pb2 as pb
from .v1 import embedcache_pb2_grpc as pb_grpc

Encoders = Union[str, Sequence[str]]
DEFAULT_ADDRESS = "127.0.0.1:50051"
SHARED_MEMORY_MODES = ("auto", "off", "require")
log = logging.getLogger("embedcache")


def _lower(enum_type, value: int) -> str:
    """``DTYPE_FLOAT16`` → ``float16``, ``JOB_STATE_COMPLETED`` → ``completed``."""
    name = enum_type.Name(value)
    prefix = {pb.DType: "DTYPE_", pb.Tier: "TIER_", pb.InputKind: "INPUT_KIND_", pb.JobState: "JOB_STATE_"}.get(enum_type, "")
    return name[len(prefix):].lower() if name.startswith(prefix) else name.lower()


def _names(encoders: Encoders) -> List[str]:
    return [encoders] if isinstance(encoders, str) else list(encoders)


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncoderInfo:
    """An encoder the service owns."""

    name: str
    fingerprint: str
    dim: int
    dtype: str
    tier: str
    input_kind: str
    input_shape: Tuple[int, ...]
    source: str


@dataclass(frozen=True)
class LookupResult:
    """The answer to one lookup: embeddings per encoder (in key order) and labels when asked for."""

    request_id: int
    count: int
    embeddings: Dict[str, Embeddings]
    labels: Optional[Labels]

    def __getitem__(self, encoder: str) -> Embeddings:
        return self.embeddings[encoder]

    @staticmethod
    def from_message(m: pb.LookupResponse) -> "LookupResult":
        count = m.count
        labels = Labels.from_message(m.labels, count) if m.HasField("labels") else None
        return LookupResult(m.request_id, count, {r.encoder: Embeddings.from_message(r, count) for r in m.results}, labels)

    @staticmethod
    def from_wire(raw: bytes) -> "LookupResult":
        """From the received bytes: embeddings stay views on them (see :mod:`embedcache._wire`)."""
        try:
            small, ranges = _wire.split(raw, _wire.LOOKUP_RESPONSE)
            m = pb.LookupResponse.FromString(small)
            labels = _labels(m, raw, ranges, m.count, (4, 2, 1))
        except (_wire.Unexpected, IndexError):
            return LookupResult.from_message(pb.LookupResponse.FromString(raw))
        return LookupResult(m.request_id, m.count, _embeddings(m.results, raw, ranges.get(3, []), m.count), labels)


@dataclass(frozen=True)
class EpochBatch:
    """One batch of a streamed epoch.

    ``offset`` is the position of its first element in the epoch order (elements are items, or pairs
    for pair datasets) and ``total`` the split's size; ``indices`` are the items' indices in the split.
    """

    offset: int
    total: int
    indices: np.ndarray
    embeddings: Dict[str, Embeddings]
    labels: Optional[Labels]

    def __getitem__(self, encoder: str) -> Embeddings:
        return self.embeddings[encoder]

    @property
    def elements(self) -> int:
        """Elements of the epoch order this batch covers: its pairs for pair datasets, else its items."""
        if self.labels is not None and self.labels.pairs is not None and len(self.labels.pairs.a) > 0:
            return len(self.labels.pairs.a)
        return len(self.indices)

    @staticmethod
    def from_message(m: pb.DatasetBatch) -> "EpochBatch":
        count = len(m.indices)
        indices = np.fromiter(m.indices, dtype=np.uint64, count=count)
        labels = Labels.from_message(m.labels, count) if m.HasField("labels") else None
        return EpochBatch(m.offset, m.total, indices, {r.encoder: Embeddings.from_message(r, count) for r in m.results}, labels)

    @staticmethod
    def from_wire(raw: bytes) -> "EpochBatch":
        """From the received bytes: embeddings stay views on them (see :mod:`embedcache._wire`)."""
        try:
            small, ranges = _wire.split(raw, _wire.DATASET_BATCH)
            indices = _wire.packed_varints(raw, _wire.spans(ranges, 3))
            m = pb.DatasetBatch.FromString(small)
            count = len(indices)
            labels = _labels(m, raw, ranges, count, (5, 2, 1))
        except (_wire.Unexpected, IndexError):
            return EpochBatch.from_message(pb.DatasetBatch.FromString(raw))
        return EpochBatch(m.offset, m.total, indices, _embeddings(m.results, raw, ranges.get(4, []), count), labels)

    def head(self, n: int) -> "EpochBatch":
        """The first ``n`` elements (views, no copy). Pair batches keep all their items, and drop pairs."""
        if n >= self.elements:
            return self
        labels = self.labels
        if labels is not None and labels.pairs is not None:
            p = labels.pairs
            labels = Labels(labels.found[:n], pairs=Pairs(p.a[:n], p.b[:n], p.score[:n], p.subgroup[:n]))
            return EpochBatch(self.offset, self.total, self.indices, self.embeddings, labels)
        if labels is not None:
            labels = Labels(labels.found[:n], None if labels.groups is None else labels.groups[:n], None,
                            None if labels.opaque is None else labels.opaque[:n])
        return EpochBatch(self.offset, self.total, self.indices[:n], {k: e.head(n) for k, e in self.embeddings.items()}, labels)


def _epoch_batch(m: pb.DatasetBatch, indices: np.ndarray, labels: Optional[Labels], embeddings: Dict[str, Embeddings]) -> EpochBatch:
    return EpochBatch(m.offset, m.total, indices, embeddings, labels)


def _embeddings(results, raw: bytes, ranges: list, count: int) -> Dict[str, Embeddings]:
    out = {}
    view = memoryview(raw)
    for k, r in enumerate(results):
        if r.dtype not in DTYPES:
            raise ValueError(f"encoder {r.encoder!r} sent an unknown dtype {r.dtype}")
        taken = _wire.spans(ranges[k], 6) if k < len(ranges) else []
        rows = view[taken[-1][0]:taken[-1][1]] if taken else b""  # the last occurrence wins, as in protobuf
        out[r.encoder] = Embeddings(r.encoder, r.fingerprint, r.dim, DTYPES[r.dtype][0], count, rows, r.found, r.encoded)
    return out


def _labels(m, raw: bytes, ranges, count: int, group_path) -> Optional[Labels]:
    if not m.HasField("labels"):
        return None
    groups = _wire.packed_varints(raw, _wire.spans(ranges, *group_path)).view(np.int64)
    return Labels.from_message(m.labels, count, groups=groups)


@dataclass(frozen=True)
class JobProgress:
    """Progress of a prewarm job: processed of total, newly encoded, already cached (skipped), committed (durable)."""

    job_id: str
    state: str
    processed: int
    total: int
    encoded: int
    skipped: int
    committed: int
    items_per_second: float
    eta_seconds: float
    message: str
    dataset: str
    encoders: Tuple[str, ...]

    @property
    def done(self) -> bool:
        return self.state in ("completed", "failed", "cancelled")

    @staticmethod
    def from_message(m: pb.PrewarmProgress) -> "JobProgress":
        return JobProgress(m.job_id, _lower(pb.JobState, m.state), m.processed, m.total, m.encoded, m.skipped, m.committed,
                           m.items_per_second, m.eta_seconds, m.message, m.dataset, tuple(m.encoders))


@dataclass(frozen=True)
class NamespaceStats:
    encoder: str
    fingerprint: str
    tier: str
    items: int
    bytes: int
    hits: int
    misses: int
    encoded: int
    memory_bytes: int
    disk_bytes: int

    @property
    def hit_rate(self) -> Optional[float]:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None


@dataclass(frozen=True)
class Stats:
    namespaces: Tuple[NamespaceStats, ...]
    label_items: int
    uptime_seconds: float
    last_checkpoint_unix_ms: int

    def __getitem__(self, encoder: str) -> NamespaceStats:
        for n in self.namespaces:
            if n.encoder == encoder:
                return n
        raise KeyError(encoder)


# ---------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------


def _channel_target(address: str) -> Tuple[str, bool]:
    """(gRPC target, TLS by default) for ``host:port``, ``http(s)://host:port`` or ``unix:/path``."""
    if address.startswith("unix:"):
        return address, False
    if "://" in address:
        scheme, rest = address.split("://", 1)
        if scheme not in ("http", "https"):
            raise ValueError(f"address {address!r}: use host:port, http://, https:// or unix:/path")
        return rest.rstrip("/"), scheme == "https"
    return address, False


class Client:
    """A connection to an EmbedCache service. Thread-safe; create one per process and share it.

    :param address: ``host:port``, ``http://host:port``, ``https://host:port`` (TLS) or ``unix:/path``
        (``unix:///abs/path``); defaults to ``$EMBEDCACHE_SERVICE`` or ``127.0.0.1:50051``.
    :param api_key: sent as ``authorization: Bearer <key>``; defaults to ``$EMBEDCACHE_API_KEY``.
    :param tls: use TLS (implied by ``https://``).
    :param root_certificates: PEM bytes (or a path to a PEM file) of the CA to trust; default: the system's.
    :param server_name: the name the server's certificate must carry, when it differs from the address.
    :param timeout: deadline of unary calls in seconds (streams have none unless given per call).
    :param max_attempts: attempts (the first included) for calls that fail with UNAVAILABLE; epoch
        streams resume where they stopped.
    :param initial_backoff, max_backoff: retry delays in seconds (doubling, jittered).
    :param shared_memory: how :meth:`stream_epoch` gets its rows: ``"auto"`` (default) through a shared-memory
        ring (StreamDatasetShared) when the address is ``unix:`` (the service is on this host), else gRPC;
        ``"off"``: always gRPC (StreamDataset); ``"require"``: shared memory or an error. The choice is logged
        once (logger ``embedcache``) and kept in :attr:`epoch_transport`.
    :param shared_memory_ring_bytes: ring size to ask for (1 MiB .. 1 GiB); 0 takes the service's
        SharedMemory:RingBytes. One batch's rows of one encoder must fit.
    """

    def __init__(self, address: Optional[str] = None, *, api_key: Optional[str] = None, tls: Optional[bool] = None,
                 root_certificates: Union[bytes, str, None] = None, server_name: Optional[str] = None,
                 timeout: float = 30.0, max_attempts: int = 5, initial_backoff: float = 0.2, max_backoff: float = 5.0,
                 max_receive_message_bytes: int = 256 << 20, options: Sequence[Tuple[str, object]] = (),
                 shared_memory: str = "auto", shared_memory_ring_bytes: int = 0):
        address = address or os.environ.get("EMBEDCACHE_SERVICE") or DEFAULT_ADDRESS
        target, tls_default = _channel_target(address)
        if shared_memory not in SHARED_MEMORY_MODES:
            raise ValueError(f"shared_memory must be one of {SHARED_MEMORY_MODES} (was {shared_memory!r})")
        self.address = address
        self.shared_memory = shared_memory
        self.shared_memory_ring_bytes = shared_memory_ring_bytes
        #: How the last epoch stream was carried: ``"shared-memory"`` or ``"grpc"`` (None before the first).
        self.epoch_transport: Optional[str] = None
        #: Epoch batches whose ring pages were copied because views of them were kept past their release.
        self.shared_memory_stats: Dict[str, int] = {"privatized": 0}
        self._transport_logged = False
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        api_key = api_key if api_key is not None else os.environ.get("EMBEDCACHE_API_KEY")
        self._metadata: Tuple[Tuple[str, str], ...] = (("authorization", f"Bearer {api_key}"),) if api_key else ()

        channel_options = [
            ("grpc.max_receive_message_length", max_receive_message_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.enable_retries", 1 if self.max_attempts > 1 else 0),
        ]
        if self.max_attempts > 1:
            channel_options.append(("grpc.service_config", json.dumps(self._retry_config())))
        if server_name:
            channel_options.append(("grpc.ssl_target_name_override", server_name))
        channel_options.extend(options)

        use_tls = tls if tls is not None else (tls_default or root_certificates is not None)
        if use_tls:
            if isinstance(root_certificates, str):
                with open(root_certificates, "rb") as f:
                    root_certificates = f.read()
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.secure_channel(target, credentials, options=channel_options)
        else:
            self._channel = grpc.insecure_channel(target, options=channel_options)
        self._cache = pb_grpc.EmbeddingCacheStub(self._channel)
        self._admin = pb_grpc.CacheAdminStub(self._channel)
        # The embedding-carrying responses arrive as raw bytes (no deserializer) and are read in place.
        service = "/embedcache.v1.EmbeddingCache/"
        self._lookup = self._channel.unary_unary(service + "Lookup", request_serializer=pb.LookupRequest.SerializeToString)
        self._get_embeddings = self._channel.stream_stream(service + "GetEmbeddings", request_serializer=pb.LookupRequest.SerializeToString)
        self._stream_dataset = self._channel.unary_stream(service + "StreamDataset", request_serializer=pb.StreamDatasetRequest.SerializeToString)
        self._stream_shared = self._channel.stream_stream(service + "StreamDatasetShared",
                                                          request_serializer=pb.SharedStreamMessage.SerializeToString,
                                                          response_deserializer=pb.SharedStreamEvent.FromString)

    # -- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def channel(self) -> grpc.Channel:
        """The underlying channel, for calls this class does not wrap."""
        return self._channel

    # -- trainer API ----------------------------------------------------------------------------

    def encoders(self, *, timeout: Optional[float] = None) -> List[EncoderInfo]:
        """The encoders the service owns: name, fingerprint, dim, dtype, tier, input kind and shape."""
        reply = self._unary(self._cache.ListEncoders, pb.ListEncodersRequest(), timeout, "ListEncoders")
        return [EncoderInfo(e.name, e.fingerprint, e.dim, _lower(pb.DType, e.dtype), _lower(pb.Tier, e.tier),
                            _lower(pb.InputKind, e.input_kind), tuple(e.input_shape), e.source) for e in reply.encoders]

    def lookup(self, encoders: Encoders, keys: pb.KeyBatch, features: Optional[pb.FeatureBatch] = None, *,
               include_labels: bool = False, timeout: Optional[float] = None) -> LookupResult:
        """Looks ``keys`` up for ``encoders`` (see :mod:`embedcache.keys`).

        With ``features``, keys that miss are encoded by the service, stored and returned (read-through).
        """
        request = pb.LookupRequest(encoders=_names(encoders), keys=keys, include_labels=include_labels)
        if features is not None:
            request.features.CopyFrom(features)
        return LookupResult.from_wire(self._unary(self._lookup, request, timeout, "Lookup"))

    def lookup_many(self, encoders: Encoders, batches: Iterable[Union[pb.KeyBatch, Tuple[pb.KeyBatch, Optional[pb.FeatureBatch]]]],
                    *, include_labels: bool = False, timeout: Optional[float] = None) -> Iterator[LookupResult]:
        """Many lookups over one bidirectional stream (GetEmbeddings); results come back in order.

        Each element of ``batches`` is a key batch, or ``(keys, features)`` for read-through.
        """
        names = _names(encoders)

        def requests():
            for i, b in enumerate(batches, start=1):
                keys, features = b if isinstance(b, tuple) else (b, None)
                r = pb.LookupRequest(request_id=i, encoders=names, keys=keys, include_labels=include_labels)
                if features is not None:
                    r.features.CopyFrom(features)
                yield r

        call = self._get_embeddings(requests(), timeout=timeout, metadata=self._metadata)
        try:
            for reply in call:
                yield LookupResult.from_wire(reply)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e, "GetEmbeddings") from None
        finally:
            call.cancel()

    def stream_epoch(self, dataset: str, split: str, encoders: Encoders, *, batch_size: int = 0, shuffle: bool = False,
                     seed: int = 0, epoch: int = 0, start_offset: int = 0, stop_offset: Optional[int] = None,
                     include_labels: bool = False, fill_missing: bool = False, timeout: Optional[float] = None,
                     shared_memory: Optional[str] = None) -> Iterator[EpochBatch]:
        """Streams one epoch of a cached split, batch by batch.

        The order is a pure function of ``(seed, epoch)`` (index order without ``shuffle``): every caller
        sees the same order. ``start_offset`` skips that many elements of the order (resume);
        ``stop_offset`` ends the epoch early at that position (the last batch is cut to it). If the
        connection drops (UNAVAILABLE), the stream resumes where it stopped, up to ``max_attempts``.

        Over gRPC (StreamDataset) the embeddings are views on the received bytes. Over shared memory
        (StreamDatasetShared: a ``unix:`` address, see ``shared_memory`` of :class:`Client`, which this call's
        ``shared_memory`` overrides) they are views on the service's ring, and the batches are the same bit for
        bit. Either way a batch's arrays stay valid for as long as they are referenced: ring space is given back
        to the service one batch later, and a batch whose views are still held then is copied (privately, by
        the kernel) first; drop a batch's arrays before asking for the batch after next and nothing is copied.
        """
        request = pb.StreamDatasetRequest(dataset=dataset, split=split, encoders=_names(encoders), batch_size=batch_size,
                                          shuffle=shuffle, seed=seed, epoch=epoch, fill_missing=fill_missing,
                                          start_offset=start_offset, include_labels=include_labels)
        shared = self._use_shared_memory(self.shared_memory if shared_memory is None else shared_memory)
        if stop_offset is not None and stop_offset <= start_offset:
            return
        method = "StreamDatasetShared" if shared else "StreamDataset"
        attempt = 0
        while True:
            if shared:
                batches = _shared.read_epoch(self._stream_shared, request, self.shared_memory_ring_bytes, timeout,
                                             self._metadata, _epoch_batch, self.shared_memory_stats)
            else:
                batches = self._grpc_epoch(request, timeout)
            try:
                while True:
                    batch = next(batches, None)
                    if batch is None:
                        return
                    attempt = 0
                    request.start_offset = batch.offset + batch.elements
                    if stop_offset is not None and request.start_offset >= stop_offset:
                        yield batch.head(stop_offset - batch.offset)
                        return
                    yield batch
                    del batch  # not referenced from here while the next batch is fetched (see _shared)
            except (grpc.RpcError, errors.Unavailable) as e:
                code = e.code() if isinstance(e, grpc.RpcError) else e.code
                if code == grpc.StatusCode.UNAVAILABLE and attempt + 1 < self.max_attempts:
                    attempt += 1
                    time.sleep(self._backoff(attempt))
                    continue
                if isinstance(e, errors.EmbedCacheError):
                    raise
                raise errors.from_rpc_error(e, method) from None
            finally:
                batches.close()

    def _grpc_epoch(self, request: pb.StreamDatasetRequest, timeout: Optional[float]) -> Iterator[EpochBatch]:
        call = self._stream_dataset(request, timeout=timeout, metadata=self._metadata)
        try:
            for message in call:
                yield EpochBatch.from_wire(message)
        finally:
            call.cancel()

    def _use_shared_memory(self, mode: str) -> bool:
        """Shared memory when the service is on this host (a ``unix:`` address) and ``mode`` allows it; logs the choice once."""
        if mode not in SHARED_MEMORY_MODES:
            raise ValueError(f"shared_memory must be one of {SHARED_MEMORY_MODES} (was {mode!r})")
        unix = self.address.startswith("unix:")
        if mode == "off":
            shared, why = False, "shared_memory is off"
        elif unix:
            shared, why = True, f"the service is on this host ({self.address})"
        elif mode == "require":
            raise errors.FailedPrecondition(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"shared_memory is 'require', but the service at {self.address} is not reached over a Unix socket: "
                f"use its unix:///path address on its host", "StreamDatasetShared")
        else:
            shared, why = False, f"the service at {self.address} is not on a Unix socket"
        self.epoch_transport = "shared-memory" if shared else "grpc"
        if not self._transport_logged:
            self._transport_logged = True
            log.info("epoch streams: %s (%s)", "shared memory" if shared else "gRPC", why)
        return shared

    # -- admin API ------------------------------------------------------------------------------

    def prewarm(self, dataset: str, *, splits: Sequence[str] = (), encoders: Encoders = (), batch_size: int = 0,
                workers: int = 0, progress_bar: bool = True, check: bool = True,
                timeout: Optional[float] = None) -> Iterator[JobProgress]:
        """Starts (or attaches to) a prewarm job and yields its progress until it ends.

        Shows a tqdm bar on a terminal when tqdm is installed (``progress_bar=False`` never does). The
        job outlives this call: stop iterating and it keeps running. With ``check``, a job that ends
        failed or cancelled raises :class:`embedcache.errors.JobFailed` after its last progress.
        """
        request = pb.PrewarmRequest(dataset=dataset, splits=list(splits), encoders=_names(encoders),
                                    batch_size=batch_size, workers=workers, follow=True)
        bar = _ProgressBar(dataset) if progress_bar else None
        last = None
        call = self._admin.Prewarm(request, timeout=timeout, metadata=self._metadata)
        try:
            for message in call:
                last = JobProgress.from_message(message)
                if bar is not None:
                    bar.update(last)
                yield last
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e, "Prewarm") from None
        finally:
            call.cancel()
            if bar is not None:
                bar.close()
        if check and last is not None and last.state in ("failed", "cancelled"):
            raise errors.JobFailed(last)

    def stats(self, *, timeout: Optional[float] = None) -> Stats:
        """Items, bytes, hits, misses and encodes per namespace."""
        m = self._unary(self._admin.GetStats, pb.GetStatsRequest(), timeout, "GetStats")
        return Stats(tuple(NamespaceStats(n.encoder, n.fingerprint, _lower(pb.Tier, n.tier), n.items, n.bytes, n.hits, n.misses,
                                          n.encoded, n.memory_bytes, n.disk_bytes) for n in m.namespaces),
                     m.label_items, m.uptime_seconds, m.last_checkpoint_unix_ms)

    def jobs(self, *, timeout: Optional[float] = None) -> List[JobProgress]:
        """Prewarm jobs, running and finished."""
        return [JobProgress.from_message(j) for j in self._unary(self._admin.ListJobs, pb.ListJobsRequest(), timeout, "ListJobs").jobs]

    def cancel_job(self, job_id: str, *, timeout: Optional[float] = None) -> JobProgress:
        """Cancels a prewarm job; returns its final state."""
        return JobProgress.from_message(self._unary(self._admin.CancelJob, pb.CancelJobRequest(job_id=job_id), timeout, "CancelJob").job)

    def checkpoint(self, *, timeout: Optional[float] = None) -> pb.CheckpointResponse:
        """Makes everything stored so far durable."""
        return self._unary(self._admin.Checkpoint, pb.CheckpointRequest(), timeout, "Checkpoint")

    def drop_namespace(self, encoder: Optional[str] = None, fingerprint: Optional[str] = None, *,
                       timeout: Optional[float] = None) -> pb.DropNamespaceResponse:
        """Drops an encoder's namespace (its current fingerprint) or an explicit fingerprint."""
        request = pb.DropNamespaceRequest(encoder=encoder or "", fingerprint=fingerprint or "")
        return self._unary(self._admin.DropNamespace, request, timeout, "DropNamespace")

    # -- plumbing -------------------------------------------------------------------------------

    def _unary(self, method, request, timeout: Optional[float], name: str):
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e, name) from None

    def _backoff(self, attempt: int) -> float:
        delay = min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)

    def _retry_config(self) -> dict:
        # gRPC retries a call that failed with UNAVAILABLE before any response arrived (all calls here
        # are idempotent); a stream that fails later is resumed by stream_epoch itself.
        return {
            "methodConfig": [{
                "name": [{"service": "embedcache.v1.EmbeddingCache"}, {"service": "embedcache.v1.CacheAdmin"}],
                "retryPolicy": {
                    "maxAttempts": min(5, self.max_attempts),
                    "initialBackoff": f"{self.initial_backoff}s",
                    "maxBackoff": f"{self.max_backoff}s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }],
        }


class _ProgressBar:
    """A tqdm bar over a prewarm job, when tqdm is installed (shown on terminals only)."""

    def __init__(self, dataset: str):
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        self._tqdm = tqdm
        self._dataset = dataset
        self._bar = None

    def update(self, p: JobProgress) -> None:
        if self._tqdm is None:
            return
        if self._bar is None:
            self._bar = self._tqdm(total=p.total, unit="item", desc=f"prewarm {self._dataset}", disable=None)
        self._bar.total = p.total
        self._bar.n = p.processed
        self._bar.set_postfix(encoded=p.encoded, cached=p.skipped, committed=p.committed, state=p.state, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
