"""Regenerate mpc_gateway/proto/v1 from protos/ (``--check`` fails on drift).

Messages and gRPC stubs come from grpcio-tools; their typed stubs (``.pyi``)
from mypy-protobuf's plugins, so ``mypy --strict`` checks code that uses them.
"""

from __future__ import annotations

import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "mpc_gateway" / "proto" / "v1"


def generate(dest: Path) -> None:
    sources = sorted(
        str(p.relative_to(PROTOS)) for p in (PROTOS / "mpc_gateway/proto/v1").glob("*.proto")
    )
    plugins = Path(sys.executable).parent  # the environment's protoc-gen-mypy[_grpc]
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
        f"--python_out={dest}",
        f"--grpc_python_out={dest}",
        f"--mypy_out={dest}",
        f"--mypy_grpc_out={dest}",
    ]
    if protoc.main(args + sources) != 0:
        raise SystemExit("protoc failed")


def main() -> int:
    check = "--check" in sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / "mpc_gateway/proto/v1"
        names = sorted(p.name for p in fresh.iterdir() if p.is_file())
        if check:
            drift = [
                n
                for n in names
                if not (OUT / n).exists() or not filecmp.cmp(fresh / n, OUT / n, shallow=False)
            ]
            if drift:
                print("generated code differs from protos/: run `make proto`:", ", ".join(drift))
                return 1
            print("generated code matches protos/")
            return 0
        for name in names:
            shutil.copy(fresh / name, OUT / name)
        print(f"wrote {len(names)} files to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
