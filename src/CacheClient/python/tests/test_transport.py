"""Addresses, TLS, API-key metadata, retries, deadlines and stream resumption.

TLS runs against the real service (a second instance with a self-signed certificate). The rest uses a
scripted in-process gRPC server on a Unix socket, which can fail on cue where the real one cannot.
"""
import mmap
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import threading
from concurrent import futures

import grpc
import numpy as np
import pytest

import embedcache
from embedcache import errors
from embedcache.v1 import embedcache_pb2 as pb
from embedcache.v1 import embedcache_pb2_grpc as pb_grpc

from conftest import TRAINER_KEY, ServiceProcess


class ScriptedCache(pb_grpc.EmbeddingCacheServicer):
    """ListEncoders fails UNAVAILABLE `fail_list` times, or answers after `delay` seconds; StreamDataset and
    StreamDatasetShared serve 10 items in batches of 3 and drop the first call after its first batch."""

    def __init__(self, fail_list=0, delay=0.0, ring_dir=None, ring_path=None):
        self.fail_list = fail_list
        self.delay = delay
        self.ring_dir = ring_dir
        self.ring_path = ring_path  # announce this path instead of the ring's
        self.list_calls = 0
        self.stream_requests = []
        self.shared_requests = []
        self.first_acks = []
        self.metadata = []
        self.lock = threading.Lock()

    def ListEncoders(self, request, context):
        with self.lock:
            self.list_calls += 1
            self.metadata.append(dict(context.invocation_metadata()))
            fail = self.list_calls <= self.fail_list
        if fail:
            context.abort(grpc.StatusCode.UNAVAILABLE, "scripted outage")
        time.sleep(self.delay)
        return pb.ListEncodersResponse(encoders=[pb.EncoderInfo(name="fake", dim=2, dtype=pb.DTYPE_FLOAT32)])

    def StreamDataset(self, request, context):
        with self.lock:
            self.stream_requests.append(pb.StreamDatasetRequest.FromString(request.SerializeToString()))
            first_call = len(self.stream_requests) == 1
        total, size = 10, 3
        for offset in range(request.start_offset, total, size):
            n = min(size, total - offset)
            rows = np.arange(offset, offset + n, dtype="<f4").repeat(2)
            yield pb.DatasetBatch(offset=offset, total=total, indices=list(range(offset, offset + n)), results=[
                pb.EncoderEmbeddings(encoder="fake", dim=2, dtype=pb.DTYPE_FLOAT32, found=b"\xff\xff", embeddings=rows.tobytes())])
            if first_call:
                context.abort(grpc.StatusCode.UNAVAILABLE, "scripted disconnect")


    def StreamDatasetShared(self, request_iterator, context):
        messages = iter(request_iterator)
        request = next(messages).open.request
        with self.lock:
            self.shared_requests.append(pb.StreamDatasetRequest.FromString(request.SerializeToString()))
            first_call = len(self.shared_requests) == 1
        size = 1 << 20
        fd, path = tempfile.mkstemp(prefix="ring-", dir=self.ring_dir)
        os.ftruncate(fd, size)
        ring = mmap.mmap(fd, size)
        os.close(fd)
        yield pb.SharedStreamEvent(ring=pb.SharedRingFile(path=self.ring_path or path, size=size))
        self.first_acks.append(next(messages).ack.released)
        os.unlink(path)
        total, step, position = 10, 3, 4096 - 8  # the first span starts 8 bytes before a page boundary
        for offset in range(request.start_offset, total, step):
            n = min(step, total - offset)
            rows = np.arange(offset, offset + n, dtype="<f4").repeat(2).tobytes()
            ring[position:position + len(rows)] = rows
            yield pb.SharedStreamEvent(batch=pb.SharedBatch(
                batch=pb.DatasetBatch(offset=offset, total=total, indices=list(range(offset, offset + n)), results=[
                    pb.EncoderEmbeddings(encoder="fake", dim=2, dtype=pb.DTYPE_FLOAT32, found=b"\xff\xff")]),
                rows=[pb.SharedSpan(position=position, length=len(rows))]))
            position += len(rows)
            if first_call:
                context.abort(grpc.StatusCode.UNAVAILABLE, "scripted disconnect")


@pytest.fixture
def scripted():
    # A socket path must stay under 108 bytes, so not under pytest's long tmp_path.
    short = tempfile.mkdtemp(prefix="ec-", dir="/tmp")

    def start(**kwargs):
        servicer = ScriptedCache(ring_dir=short, **kwargs)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_EmbeddingCacheServicer_to_server(servicer, server)
        path = pathlib.Path(short) / f"cache{len(servers)}.sock"
        server.add_insecure_port(f"unix:{path}")
        server.start()
        servers.append(server)
        return servicer, f"unix:{path}"

    servers = []
    yield start
    for s in servers:
        s.stop(None)
    shutil.rmtree(short, ignore_errors=True)


def test_unix_socket_address_and_api_key_metadata(scripted):
    servicer, address = scripted()
    with embedcache.Client(address, api_key="k" * 20) as c:
        assert [e.name for e in c.encoders()] == ["fake"]
    assert servicer.metadata[0]["authorization"] == "Bearer " + "k" * 20


def test_unavailable_calls_are_retried_up_to_max_attempts(scripted):
    servicer, address = scripted(fail_list=2)
    with embedcache.Client(address, max_attempts=3, initial_backoff=0.01) as c:
        assert c.encoders()[0].name == "fake"
    assert servicer.list_calls == 3

    servicer, address = scripted(fail_list=5)
    with embedcache.Client(address, max_attempts=1) as c:
        with pytest.raises(errors.Unavailable) as e:
            c.encoders()
    assert e.value.message == "scripted outage" and servicer.list_calls == 1


def test_deadlines_apply_to_unary_calls_per_client_and_per_call(scripted):
    _, address = scripted(delay=3)
    with embedcache.Client(address, timeout=0.2) as c:
        with pytest.raises(errors.DeadlineExceeded) as e:
            c.encoders()
        assert isinstance(e.value, TimeoutError) and e.value.method == "ListEncoders"
        started = time.monotonic()
        with pytest.raises(errors.DeadlineExceeded):
            c.encoders(timeout=0.05)
        assert time.monotonic() - started < 2.5


def test_a_dropped_epoch_stream_resumes_where_it_stopped(scripted):
    servicer, address = scripted()
    with embedcache.Client(address, initial_backoff=0.01, shared_memory="off") as c:  # a unix: address: gRPC only if asked
        batches = list(c.stream_epoch("d", "s", "fake", batch_size=3))
    assert np.concatenate([b.indices for b in batches]).tolist() == list(range(10))
    assert [r.start_offset for r in servicer.stream_requests] == [0, 3]
    assert batches[1]["fake"].float32()[:, 0].tolist() == [3, 4, 5]


def test_a_dropped_shared_memory_epoch_resumes_where_it_stopped(scripted):
    servicer, address = scripted()
    with embedcache.Client(address, initial_backoff=0.01, shared_memory="require") as c:
        batches = list(c.stream_epoch("d", "s", "fake", batch_size=3))
        assert c.epoch_transport == "shared-memory"
    assert np.concatenate([b.indices for b in batches]).tolist() == list(range(10))
    assert [r.start_offset for r in servicer.shared_requests] == [0, 3] and servicer.first_acks == [0, 0]
    assert [b["fake"].float32()[:, 0].tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert all(isinstance(b["fake"].raw.obj, mmap.mmap) for b in batches)
    assert not servicer.stream_requests  # no StreamDataset call


def test_a_ring_the_trainer_cannot_open_is_permission_denied(scripted):
    _, address = scripted(ring_path="/nonexistent/embedcache-ring")
    with embedcache.Client(address, shared_memory="require", max_attempts=1) as c:
        with pytest.raises(errors.PermissionDenied) as e:
            list(c.stream_epoch("d", "s", "fake"))
    assert "/nonexistent/embedcache-ring" in e.value.message and "service's user" in e.value.message


@pytest.mark.parametrize("shared_memory", ["off", "require"])
def test_stop_offset_cuts_the_epoch_without_copying(scripted, shared_memory):
    _, address = scripted()
    with embedcache.Client(address, shared_memory=shared_memory) as c:
        batches = list(c.stream_epoch("d", "s", "fake", start_offset=3, stop_offset=8))
    assert np.concatenate([b.indices for b in batches]).tolist() == [3, 4, 5, 6, 7]
    last = batches[-1]["fake"]
    assert last.count == 2 and last.float32()[:, 0].tolist() == [6, 7]


def test_tls_with_a_self_signed_certificate_against_the_real_service(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    service = ServiceProcess([f"--EmbedCache:Tls:CertificatePath={cert}", f"--EmbedCache:Tls:KeyPath={key}",
                              f"--EmbedCache:Auth:TrainerKeys:0={TRAINER_KEY}"], tmp_path / "save")
    try:
        assert service.grpc.startswith("https://")
        with embedcache.Client(service.grpc, root_certificates=str(cert), api_key=TRAINER_KEY) as c:
            assert "random-mlp" in [e.name for e in c.encoders()]
        with embedcache.Client(service.grpc, root_certificates=cert.read_bytes(), server_name="localhost",
                               api_key=TRAINER_KEY) as c:
            assert c.encoders()
        # Without the CA the handshake fails: UNAVAILABLE, after the retries.
        with embedcache.Client(service.grpc, api_key=TRAINER_KEY, max_attempts=1, timeout=20) as c:
            with pytest.raises(errors.Unavailable):
                c.encoders()
    finally:
        service.stop()


def test_addresses_accept_host_port_http_https_and_unix():
    from embedcache.client import _channel_target

    assert _channel_target("127.0.0.1:5") == ("127.0.0.1:5", False)
    assert _channel_target("http://h:5/") == ("h:5", False)
    assert _channel_target("https://h:5") == ("h:5", True)
    assert _channel_target("unix:///run/x.sock") == ("unix:///run/x.sock", False)
    with pytest.raises(ValueError):
        _channel_target("ftp://h:5")


def test_the_stubs_were_generated_into_the_installed_package():
    assert pathlib.Path(pb.__file__).parent.parent == pathlib.Path(embedcache.__file__).parent


def test_no_generated_stubs_are_committed():
    from conftest import repo_root

    root = repo_root()
    listed = subprocess.run(["git", "-C", str(root), "ls-files"], capture_output=True, text=True) if root else None
    if listed is None or listed.returncode != 0:
        pytest.skip("not a git checkout")
    generated = [f for f in listed.stdout.splitlines() if f.endswith(("_pb2.py", "_pb2_grpc.py", "_pb2.pyi"))]
    assert generated == [] and "src/CacheClient/python/setup.py" in listed.stdout.splitlines()
