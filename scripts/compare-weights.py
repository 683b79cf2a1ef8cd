#!/usr/bin/env python3
"""Compares two safetensors files tensor by tensor (numpy only: the GPU machine's Python may lack
the safetensors package). Exits 1 when a name is missing or a tensor differs by more than TOL
relative to its size (max |a-b| / max(1, max |a|)).

    compare-weights.py A.safetensors B.safetensors [TOL]
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "U8": np.uint8,
          "BOOL": np.bool_}


def read(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] == "BF16":
            raw = np.frombuffer(data[slice(*meta["data_offsets"])], np.uint16).astype(np.uint32) << 16
            out[name] = raw.view(np.float32).reshape(meta["shape"])
        else:
            out[name] = np.frombuffer(data[slice(*meta["data_offsets"])], DTYPES[meta["dtype"]]).reshape(meta["shape"])
    return out


def main():
    a, b = read(sys.argv[1]), read(sys.argv[2])
    tol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
    if a.keys() != b.keys():
        print(f"different tensors: {sorted(a.keys() ^ b.keys())}")
        return 1
    worst = max(
        ((np.abs(a[k].astype(np.float64) - b[k]).max(initial=0.0) / max(1.0, np.abs(a[k]).max(initial=0.0)), k) for k in a),
        default=(0.0, ""))
    print(f"{len(a)} tensors; largest relative difference {worst[0]:.3g} ({worst[1]})")
    return 0 if worst[0] <= tol else 1


if __name__ == "__main__":
    sys.exit(main())
