#!/usr/bin/env python3
"""Converts one or more `larserve patches` HDF5 files into a directory of .npy files, so that
python/train.py can train on a machine without h5py (it memory-maps them with
np.load(mmap_mode='r')).

    python/patches_to_npy.py patches.h5 -o patches_npy/ [--dtype float16|float32]
    python/patches_to_npy.py a.h5 b.h5 -o ab_npy/            # concatenated
    python/patches_to_npy.py patches.h5 -o patches.npz         # one .npz instead (not mmap-able)

Output directory: patches.npy [N,48,48,1] (float16 by default: the scaled ADC values lie in about
[-5, 15], where float16 keeps ~3 significant digits, and it halves the size), and every other
per-patch dataset of the file with its own dtype (label, michel, category, event, apa, plane,
wire, peak_tick, integral, truth_fraction, kind), plus meta.json: the root attributes of the
first file, the source files and their row ranges. Several inputs are concatenated; their event
numbers are offset so that events of different files stay distinct (python/train.py splits
training and validation by event). Conversion is chunked: memory use is one chunk, whatever N.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import patchdata  # noqa: E402

CHUNK = 16384


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="patches .h5 files written by `larserve patches`")
    ap.add_argument("-o", "--output", required=True, help="output directory (or a .npz file)")
    ap.add_argument("--dtype", choices=["float16", "float32"], default="float16",
                    help="storage type of the patches (default float16)")
    args = ap.parse_args(argv)

    sources = [patchdata.open_patches(p) for p in args.inputs]
    n_total = sum(len(s) for s in sources)
    names = [n for n in patchdata.PER_PATCH if all(s.has(n) for s in sources)]
    to_npz = args.output.endswith(".npz")
    out_dir = os.path.dirname(os.path.abspath(args.output)) if to_npz else args.output
    os.makedirs(out_dir, exist_ok=True)
    tmp_dir = args.output + ".parts" if to_npz else out_dir
    os.makedirs(tmp_dir, exist_ok=True)

    dst = {"patches": np.lib.format.open_memmap(os.path.join(tmp_dir, "patches.npy"), mode="w+",
                                                dtype=args.dtype, shape=(n_total,) + patchdata.PATCH_SHAPE)}
    for n in names:
        dtype = sources[0].arrays[n].dtype
        dst[n] = np.lib.format.open_memmap(os.path.join(tmp_dir, n + ".npy"), mode="w+", dtype=dtype,
                                           shape=(n_total,))
    rows, ranges, event_offset = 0, [], 0
    for s in sources:
        max_event = -1
        for start in range(0, len(s), CHUNK):
            stop = min(len(s), start + CHUNK)
            dst["patches"][rows + start:rows + stop] = s.read("patches", start, stop).astype(args.dtype)
            for n in names:
                a = s.read(n, start, stop)
                if n == "event":
                    max_event = max(max_event, int(a.max()) if len(a) else -1)
                    a = a + event_offset
                dst[n][rows + start:rows + stop] = a
        ranges.append({"path": os.path.abspath(s.path), "rows": [rows, rows + len(s)],
                       "event_offset": event_offset, "bytes": s.size_bytes()})
        rows += len(s)
        event_offset += max_event + 1
        s.close()
    for a in dst.values():
        a.flush()
    attrs = dict(sources[0].attrs)
    if "n_patches" in attrs:
        attrs["n_patches"] = n_total
    meta = {"format": "larserve-patches-npy", "schema_version": 1, "n": n_total,
            "patches_dtype": args.dtype, "datasets": ["patches"] + names,
            "attrs": attrs, "sources": ranges}
    if to_npz:
        arrays = {k: np.load(os.path.join(tmp_dir, k + ".npy"), mmap_mode="r") for k in dst}
        np.savez(args.output, meta_json=np.array(json.dumps(meta)), **arrays)
        del arrays, dst
        for k in ["patches"] + names:
            os.remove(os.path.join(tmp_dir, k + ".npy"))
        os.rmdir(tmp_dir)
    else:
        with open(os.path.join(out_dir, "meta.json"), "w") as fh:
            json.dump(meta, fh, indent=1)
    print(f"{n_total} patches ({args.dtype}) from {len(sources)} file(s) -> {args.output}")


if __name__ == "__main__":
    main()
