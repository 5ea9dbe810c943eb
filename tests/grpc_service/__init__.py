"""The test service: ``echo.proto`` and the stubs generated from it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

PROTO = Path(__file__).with_name("echo.proto")


def generate(target: Path) -> tuple[ModuleType, ModuleType]:
    """Generate the stubs into ``target`` and import them: (messages, services)."""
    from grpc_tools import protoc

    include = str(Path(protoc.__file__).parent / "_proto")
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO.parent}",
            f"-I{include}",
            f"--python_out={target}",
            f"--grpc_python_out={target}",
            str(PROTO),
        ]
    )
    if status != 0:
        raise RuntimeError(f"protoc failed with status {status}")
    sys.path.insert(0, str(target))
    try:
        messages = importlib.import_module("echo_pb2")
        services = importlib.import_module("echo_pb2_grpc")
    finally:
        sys.path.remove(str(target))
    return messages, services
