"""Read what the runtime needs from an ONNX file without the onnx package: metadata, opsets, custom ops.

ONNX files are protobuf ``ModelProto`` messages. This module walks the protobuf wire format directly
(a few dozen lines; field numbers from onnx/onnx.proto) and skips the weight tensors without reading
them (the file is memory-mapped), so it is fast on a 200 MB graph and keeps the runtime free of onnx.
It also tells whether a graph holds the ``siamrpn::DepthwiseXCorr`` node before any ONNX Runtime
session exists, so the custom-op library is registered only when needed.
"""
from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

from runtime.contract import GraphMeta
from runtime.errors import ContractError

STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")

# ModelProto / GraphProto / NodeProto / AttributeProto field numbers (onnx.proto)
_MODEL_IR_VERSION, _MODEL_PRODUCER, _MODEL_GRAPH, _MODEL_OPSET, _MODEL_METADATA = 1, 2, 7, 8, 14
_GRAPH_NODE = 1
_NODE_OP_TYPE, _NODE_ATTRIBUTE, _NODE_DOMAIN = 4, 5, 7
_ATTR_GRAPH, _ATTR_GRAPHS = 6, 11


@dataclass(frozen=True)
class OnnxSummary:
    """ir_version; producer (producer_name); opsets: domain -> version; metadata: metadata_props;
    custom_ops: sorted unique (domain, op_type) of nodes outside the standard ONNX domains, subgraphs
    (Loop/If bodies) included."""

    path: str
    ir_version: int
    producer: str
    opsets: dict
    metadata: dict
    custom_ops: tuple


class _Corrupt(Exception):
    pass


def read_onnx_summary(path: str | Path) -> OnnxSummary:
    """Parse ``path``; raises ContractError when it is missing, empty or not a well-formed ONNX model."""
    path = Path(path)
    if not path.is_file():
        raise ContractError(f"{path}: no such ONNX file; export the model first (siamtrack export)")
    if path.stat().st_size == 0:
        raise ContractError(f"{path}: empty file; re-export the model (siamtrack export)")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        buf = memoryview(mm)
        try:
            return _summarise(str(path), buf)
        except _Corrupt as err:
            raise ContractError(f"{path}: not a readable ONNX model ({err}); the file is truncated, corrupted "
                                "or not ONNX. Re-export it (siamtrack export) or copy it again") from None
        finally:
            buf.release()


def read_metadata(path: str | Path) -> dict:
    """Only the model's metadata_props (a dict), without walking the graph: fast enough to read every
    variant of a folder before choosing one. ContractError like ``read_onnx_summary``."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return read_onnx_summary(path).metadata   # raises the missing / empty-file error
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        buf = memoryview(mm)
        try:
            metadata = {}
            for field, value in _fields(buf, 0, len(buf)):
                if field == _MODEL_METADATA and isinstance(value, tuple):
                    sub = dict(_fields(buf, *value))
                    metadata[_text(buf, sub.get(1, (0, 0)))] = _text(buf, sub.get(2, (0, 0)))
            return metadata
        except _Corrupt as err:
            raise ContractError(f"{path}: not a readable ONNX model ({err}); the file is truncated, corrupted "
                                "or not ONNX. Re-export it (siamtrack export) or copy it again") from None
        finally:
            buf.release()


def read_graph_meta(path: str | Path) -> GraphMeta:
    """The siamrpn.* metadata of an exported graph; ContractError if the file is not one of ours."""
    return GraphMeta.from_props(read_onnx_summary(path).metadata, where=str(path))


def _summarise(path: str, buf) -> OnnxSummary:
    ir_version, producer, opsets, metadata, custom = 0, "", {}, {}, set()
    saw_graph = False
    for field, value in _fields(buf, 0, len(buf)):
        if field == _MODEL_IR_VERSION and isinstance(value, int):
            ir_version = value
        elif field == _MODEL_PRODUCER and isinstance(value, tuple):
            producer = _text(buf, value)
        elif field == _MODEL_OPSET and isinstance(value, tuple):
            sub = dict(_fields(buf, *value))
            opsets[_text(buf, sub[1]) if 1 in sub else ""] = sub.get(2, 1)
        elif field == _MODEL_METADATA and isinstance(value, tuple):
            sub = dict(_fields(buf, *value))
            metadata[_text(buf, sub.get(1, (0, 0)))] = _text(buf, sub.get(2, (0, 0)))
        elif field == _MODEL_GRAPH and isinstance(value, tuple):
            saw_graph = True
            _collect_custom_ops(buf, value, custom)
    if not saw_graph or ir_version == 0:
        raise _Corrupt("no graph or IR version found")
    return OnnxSummary(path, ir_version, producer, opsets, metadata, tuple(sorted(custom)))


def _collect_custom_ops(buf, span: tuple[int, int], found: set) -> None:
    for field, value in _fields(buf, *span):
        if field != _GRAPH_NODE or not isinstance(value, tuple):
            continue
        op_type, domain = "", ""
        for nf, nv in _fields(buf, *value):
            if nf == _NODE_OP_TYPE and isinstance(nv, tuple):
                op_type = _text(buf, nv)
            elif nf == _NODE_DOMAIN and isinstance(nv, tuple):
                domain = _text(buf, nv)
            elif nf == _NODE_ATTRIBUTE and isinstance(nv, tuple):
                for af, av in _fields(buf, *nv):
                    if af in (_ATTR_GRAPH, _ATTR_GRAPHS) and isinstance(av, tuple):
                        _collect_custom_ops(buf, av, found)
        if domain not in STANDARD_DOMAINS:
            found.add((domain, op_type))


def _text(buf, span: tuple[int, int]) -> str:
    try:
        return bytes(buf[span[0]:span[1]]).decode("utf-8")
    except UnicodeDecodeError:
        raise _Corrupt(f"invalid UTF-8 string at byte {span[0]}") from None


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= end or shift > 63:
            raise _Corrupt(f"bad varint at byte {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf, start: int, end: int):
    """Yield (field number, value) of one message: int for varints/fixed, (start, end) for bytes."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _Corrupt(f"field number 0 at byte {pos}")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _Corrupt(f"field {field} runs past the end of its message at byte {pos}")
            value, pos = (pos, pos + length), pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise _Corrupt(f"field {field} runs past the end at byte {pos}")
            value, pos = int.from_bytes(buf[pos:pos + size], "little"), pos + size
        else:
            raise _Corrupt(f"unsupported wire type {wire} at byte {pos}")
        yield field, value
