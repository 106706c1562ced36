"""Safetensors, the one reader and writer of the Python side (train/formats/safetensors.h is the C++ side).

Layout: an 8-byte little-endian header length N, N bytes of JSON header
{"name": {"dtype", "shape", "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}, then the raw
little-endian tensor bytes (offsets relative to the byte after the header). attnlab writes, for every
tensor NAME, the metadata entry "crc32.NAME" = the CRC-32 (zlib polynomial, 8 lowercase hex digits) of its
bytes; read_safetensors verifies it for every tensor it decodes and refuses a mismatch.
"""
import json
import os
import struct
import zlib

import numpy as np

CHECKSUM_PREFIX = "crc32."

_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
           "I16": np.int16, "I8": np.int8, "U8": np.uint8, "U64": np.uint64, "U32": np.uint32, "BOOL": np.bool_}
_NAMES = {np.dtype(v).newbyteorder("<"): k for k, v in _DTYPES.items()}


class SafetensorsError(ValueError):
    """A file that is not valid safetensors, or whose data fails its checksum. The message names the file
    and, where there is one, the tensor."""


def read_header(path):
    """-> (header dict name -> {dtype, shape, data_offsets}, metadata dict with the checksum entries, raw bytes,
    offset of the data section)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise SafetensorsError(f"{path}: truncated (no header length)")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise SafetensorsError(f"{path}: header length {n} exceeds the file size {len(raw)}")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise SafetensorsError(f"{path}: the header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: the header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    return header, meta, raw, 8 + n


def read_safetensors(path, names=None, verify=True):
    """-> (dict name -> numpy array in native byte order, metadata dict without the crc32.* entries).

    names: a predicate on tensor names selecting what to decode (default: everything). verify: check every
    decoded tensor against its crc32.<name> entry when the file has checksums (every file attnlab writes
    has; a file from another writer without any is read unverified). Raises SafetensorsError."""
    header, meta, raw, base = read_header(path)
    sums = {k[len(CHECKSUM_PREFIX):]: v for k, v in meta.items() if k.startswith(CHECKSUM_PREFIX)}
    meta = {k: v for k, v in meta.items() if not k.startswith(CHECKSUM_PREFIX)}
    size = len(raw) - base
    out = {}
    for name, h in header.items():
        if names is not None and not names(name):
            continue
        try:
            dt, shape, (b, e) = h["dtype"], tuple(int(s) for s in h["shape"]), h["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(f"{path}: tensor {name!r}: malformed header entry {h!r}") from None
        if dt not in _DTYPES:
            raise SafetensorsError(f"{path}: tensor {name!r}: unsupported dtype {dt}")
        np_dt = np.dtype(_DTYPES[dt]).newbyteorder("<")
        if not (0 <= b <= e <= size) or e - b != int(np.prod(shape, dtype=np.int64)) * np_dt.itemsize:
            raise SafetensorsError(f"{path}: tensor {name!r}: offsets [{b}, {e}) inconsistent with {dt} "
                                   f"{list(shape)} in a data section of {size} bytes")
        blob = raw[base + b:base + e]
        if verify and sums:
            if name not in sums:
                raise SafetensorsError(f"{path}: tensor {name!r} has no checksum (crc32.{name})")
            got = f"{zlib.crc32(blob) & 0xffffffff:08x}"
            if got != sums[name]:
                raise SafetensorsError(f"{path}: tensor {name!r} fails its checksum (CRC-32 stored {sums[name]}, "
                                       f"computed {got}): the data is corrupt")
        out[name] = np.frombuffer(blob, dtype=np_dt).reshape(shape).astype(np_dt.newbyteorder("="))
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> numpy array (insertion order, header padded to 8 bytes), with a crc32.<name>
    metadata entry per tensor as attnlab writes them. Atomic (temporary file, fsync, rename)."""
    header, blobs, off = {}, [], 0
    meta = {str(k): str(v) for k, v in (metadata or {}).items() if not str(k).startswith(CHECKSUM_PREFIX)}
    for name, a in tensors.items():
        a = np.asarray(a)  # (np.ascontiguousarray would turn a 0-d scalar into shape [1])
        le = a.dtype.newbyteorder("<")
        if le not in _NAMES:
            raise SafetensorsError(f"tensor {name!r}: unsupported dtype {a.dtype}")
        blob = a.astype(le).tobytes()
        header[name] = {"dtype": _NAMES[le], "shape": list(a.shape), "data_offsets": [off, off + len(blob)]}
        meta[CHECKSUM_PREFIX + name] = f"{zlib.crc32(blob) & 0xffffffff:08x}"
        blobs.append(blob)
        off += len(blob)
    header["__metadata__"] = meta
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for blob in blobs:
            f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
