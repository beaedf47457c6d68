"""Build hook: generates the gRPC stubs from the repository's protos/ into the package being built.

Nothing generated is committed. The proto lives at <repo>/protos/embedcache/v1/embedcache.proto; set
EMBEDCACHE_PROTOS to another protos/ directory to build from elsewhere. protoc writes
embedcache/v1/embedcache_pb2.py (+ _pb2_grpc.py), whose imports (`from embedcache.v1 import ...`)
resolve to this package's `embedcache.v1` subpackage.
"""
import os
import pathlib

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = pathlib.Path(__file__).resolve().parent
PROTO = "embedcache/v1/embedcache.proto"


def _protos_dir() -> pathlib.Path:
    candidates = [os.environ.get("EMBEDCACHE_PROTOS"), HERE.parents[2] / "protos", HERE / "protos"]
    for c in candidates:
        if c and (pathlib.Path(c) / PROTO).is_file():
            return pathlib.Path(c)
    raise RuntimeError(f"{PROTO} not found (looked in {[str(c) for c in candidates if c]}); set EMBEDCACHE_PROTOS")


def generate_stubs(out_root: pathlib.Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    protos = _protos_dir()
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    args = ["grpc_tools.protoc", f"-I{protos}", f"--python_out={out_root}", f"--grpc_python_out={out_root}"]
    if well_known.is_dir():
        args.insert(2, f"-I{well_known}")
    args.append(str(protos / PROTO))
    if protoc.main(args) != 0:
        raise RuntimeError(f"grpc_tools.protoc failed on {protos / PROTO}")
    package = out_root / "embedcache" / "v1"
    (package / "__init__.py").write_text('"""Stubs generated from protos/embedcache/v1/embedcache.proto at build time."""\n')


class BuildPyWithStubs(build_py):
    def run(self):
        super().run()
        # An editable install imports from the source tree, so the stubs go there (git-ignored).
        generate_stubs(HERE if getattr(self, "editable_mode", False) else pathlib.Path(self.build_lib))


setup(cmdclass={"build_py": BuildPyWithStubs})
