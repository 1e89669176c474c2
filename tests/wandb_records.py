"""Read back what wandb wrote offline: the records of a ``run-*.wandb`` file.

The file is wandb's append-only log: a 7-byte header (``:W&B``, magic, version), then 32 KiB
blocks of chunks, each ``crc32 (4) | length (2) | type (1) | data``, type 1 a whole record and
2/3/4 the first/middle/last piece of one; a block's last < 7 bytes are padding. Each record is a
``wandb_internal.proto`` ``Record``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7


def records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a wandb log (header {data[:4]!r})")
    out, pos, pending = [], HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 1:
            whole = chunk
        elif kind == 2:
            pending = chunk
            continue
        elif kind == 3:
            pending += chunk
            continue
        elif kind == 4:
            whole, pending = pending + chunk, b""
        else:
            continue
        rec = pb.Record()
        rec.ParseFromString(whole)
        out.append(rec)
    return out


def _key(item: Any) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def history(path: Path) -> list[dict[str, Any]]:
    """Every logged step as a dict of its values."""
    return [
        {_key(i): json.loads(i.value_json) for i in r.history.item}
        for r in records(path)
        if r.WhichOneof("record_type") == "history"
    ]


def config(path: Path) -> dict[str, Any]:
    """The run's config as wandb stored it (from the run record and any later config updates)."""
    out: dict[str, Any] = {}
    for r in records(path):
        kind = r.WhichOneof("record_type")
        items = r.run.config.update if kind == "run" else r.config.update if kind == "config" else []
        for i in items:
            out[_key(i)] = json.loads(i.value_json)
    return out
