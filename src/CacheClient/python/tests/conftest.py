"""Fixtures: the real service, built from src/CacheService, run as a child process on loopback.

The service is `dotnet EmbedCache.CacheService.dll` with free ports (the start-up log line says which),
a Unix socket in a temp directory (shared-memory epochs), a temp SaveDir, API keys, and two extra encoders so every stored dtype is covered:
`half` (random-mlp, float16) and `bf` (random-mlp, bfloat16). `digits` is prewarmed for
random-mlp, half and bf once per session.

Where things are: $EMBEDCACHE_SERVICE_DLL and $EMBEDCACHE_CLIENT_PROBE_DLL (set by
tests/PythonClient.Tests), else the Debug/Release build outputs of the repository these tests sit in.
"""
from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import List, Optional

import pytest

import embedcache

TRAINER_KEY = "trainer-key-python-tests-0001"
ADMIN_KEY = "admin-key-python-tests-000001"
ENCODERS = {"float32": "random-mlp", "float16": "half", "bfloat16": "bf"}
LISTENING = re.compile(r"listening: gRPC (?P<grpc>https?://\S+?)/?, HTTP (?P<http>https?://\S+?)/?(?:, gRPC (?P<unix>unix:\S+))?$")


def repo_root() -> Optional[pathlib.Path]:
    env = os.environ.get("EMBEDCACHE_REPO_ROOT")
    if env:
        return pathlib.Path(env)
    for d in pathlib.Path(__file__).resolve().parents:
        if (d / "EmbedCache.slnx").is_file():
            return d
    return None


def built(env: str, relative: str) -> pathlib.Path:
    if os.environ.get(env):
        return pathlib.Path(os.environ[env])
    root = repo_root()
    for configuration in ("Debug", "Release"):
        candidate = root / relative.format(configuration=configuration) if root else None
        if candidate is not None and candidate.is_file():
            return candidate
    pytest.fail(f"{relative} is not built (set ${env}, or build the solution first)")


class ServiceProcess:
    """The service as a child process: its output is collected line by line."""

    def __init__(self, args: List[str], save_dir: pathlib.Path):
        dll = built("EMBEDCACHE_SERVICE_DLL", "src/CacheService/bin/{configuration}/net10.0/EmbedCache.CacheService.dll")
        self.lines: List[str] = []
        self.process = subprocess.Popen(
            ["dotnet", str(dll), "--EmbedCache:GrpcPort=0", "--EmbedCache:HttpPort=0", f"--EmbedCache:SaveDir={save_dir}", *args],
            cwd=dll.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "DOTNET_NOLOGO": "1"})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.unix_address: Optional[str] = None  # unix:///path with --EmbedCache:UnixSocketPath
        self.grpc = self._wait_listening()
        self.address = self.grpc.split("://", 1)[1]

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def _wait_listening(self, timeout: float = 180) -> str:
        """The gRPC address once the ports are open ("listening"); then up to 60 s more for "EmbedCache ready"
        (calls are UNAVAILABLE until the store has recovered; the client retries those)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = LISTENING.search(line)
                if m:
                    ready_by = time.monotonic() + 60
                    while time.monotonic() < ready_by and not any("EmbedCache ready" in l for l in list(self.lines)):
                        time.sleep(0.05)
                    self.unix_address = m.group("unix")
                    return m.group("grpc")
            if self.process.poll() is not None:
                self._reader.join(5)
                pytest.fail(f"the service exited ({self.process.returncode}) before listening:\n{self.output}")
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"the service did not log its listening line within {timeout:.0f}s:\n{self.output}")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def service(tmp_path_factory):
    args = [
        f"--EmbedCache:Auth:TrainerKeys:0={TRAINER_KEY}", f"--EmbedCache:Auth:AdminKeys:0={ADMIN_KEY}",
        "--EmbedCache:Encoders:half:Kind=random-mlp", "--EmbedCache:Encoders:half:DType=Float16",
        "--EmbedCache:Encoders:bf:Kind=random-mlp", "--EmbedCache:Encoders:bf:DType=BFloat16",
        # never prewarmed: streaming it fails with FAILED_PRECONDITION
        "--EmbedCache:Encoders:cold:Kind=random-mlp", "--EmbedCache:Encoders:cold:Seed=7",
        # gRPC on a Unix socket too (test_unix_socket.py), with the shared-memory epoch stream (test_shared_memory.py),
        # whose slow-reader cut-off is shortened for its test (a normal epoch of digits never fills a ring)
        f"--EmbedCache:UnixSocketPath={tmp_path_factory.mktemp('socket') / 'ec.sock'}",  # short: at most 107 bytes
        "--EmbedCache:SharedMemory:SlowReaderSeconds=3",
    ]
    s = ServiceProcess(args, tmp_path_factory.mktemp("savedir"))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def admin(service):
    with embedcache.Client(service.address, api_key=ADMIN_KEY) as c:
        yield c


@pytest.fixture(scope="session")
def client(service):
    with embedcache.Client(service.address, api_key=TRAINER_KEY) as c:
        yield c


@pytest.fixture(scope="session")
def digits(admin):
    """`digits` prewarmed for random-mlp, half and bf; returns the final job progress."""
    progress = list(admin.prewarm("digits", encoders=list(ENCODERS.values()), progress_bar=False))
    assert progress[-1].state == "completed", progress[-1]
    return progress[-1]


@dataclass
class Probe:
    """The .NET client (tests/ClientProbe), run as a child process."""

    dll: pathlib.Path

    def run(self, *args: str) -> str:
        r = subprocess.run(["dotnet", str(self.dll), *args], capture_output=True, text=True, timeout=300,
                           env={**os.environ, "DOTNET_NOLOGO": "1"})
        if r.returncode != 0:
            pytest.fail(f"ClientProbe {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
        return r.stdout


@pytest.fixture(scope="session")
def probe() -> Probe:
    return Probe(built("EMBEDCACHE_CLIENT_PROBE_DLL", "tests/ClientProbe/bin/{configuration}/net10.0/EmbedCache.ClientProbe.dll"))


@pytest.fixture(scope="session")
def digits_csv() -> pathlib.Path:
    root = repo_root()
    path = root / "deploy/datasets/digits/train.csv" if root else None
    if path is None or not path.is_file():
        pytest.fail("deploy/datasets/digits/train.csv not found (set $EMBEDCACHE_REPO_ROOT)")
    return path


def pytest_report_header(config):
    return f"python {sys.version.split()[0]} at {sys.executable}; embedcache from {pathlib.Path(embedcache.__file__).parent}"
