"""Reads hit patches for training: `larserve patches` HDF5 files, or the .npy directories / .npz
files that python/patches_to_npy.py makes from them (for machines without h5py).

Only numpy is required; h5py is imported when an .h5 file is read. Arrays are returned lazily
(h5py datasets or read-only memory maps), so a caller can copy them chunk by chunk into whatever
storage it wants (a GPU tensor, float16, ...) without a full float32 copy in host memory.

Schema: the `larserve-patches` file, schema 1, that `larserve patches` writes (docs/formats.md).
"""
import json
import os
import re
import sys

import numpy as np

PATCH_FORMAT = "larserve-patches"
PATCH_SCHEMA_VERSION = 1
PATCH_SHAPE = (48, 48, 1)  # FACTS.md section 3: PatchSizeW = 48 wires x PatchSizeD = 48 bins
CLASS_NAMES = ("track", "em", "none")
# Per-patch datasets, all length N. `patches` is [N, 48, 48, 1].
PER_PATCH = ("label", "michel", "category", "event", "apa", "plane", "wire", "peak_tick",
             "integral", "truth_fraction", "kind")
REQUIRED = ("patches", "label", "michel")
# The delta-ray schemes of `larserve patches/reco --delta-rays` and of the `delta_rays`
# attribute (docs/formats.md; FACTS.md section 3 asks that the choice be stated): "track" (the
# original, also meant by a file without the attribute), "em", or "size:E": a delta ray whose
# electron had less than E MeV of kinetic energy at creation is track, the others em.
DELTA_RAYS = ("track", "em")
DELTA_RAYS_SIZE = "size:"
_SIZE_NUMBER = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_delta_rays(value):
    """(scheme, E) of a delta-ray scheme: ("track", None), ("em", None) or ("size", E) with E a
    positive float32 (MeV), as larserve parses it. ValueError naming the value otherwise."""
    value = _str(value)
    if value in DELTA_RAYS:
        return value, None
    if isinstance(value, str) and value.startswith(DELTA_RAYS_SIZE):
        number = value[len(DELTA_RAYS_SIZE):]
        mev = float(number) if _SIZE_NUMBER.fullmatch(number) else float("nan")
        if not (0 < mev <= np.finfo(np.float32).max) or not np.float32(mev) > 0:
            raise ValueError(f"delta-ray scheme {value!r}: E in 'size:E' must be a positive number "
                             "of MeV (e.g. size:5)")
        return "size", np.float32(mev)
    raise ValueError(f"delta-ray scheme {value!r}: expected 'track' (the original 3-class scheme), "
                     "'em' or 'size:E' (delta rays below E MeV track, the others em; e.g. size:5)")


def delta_rays_name(value):
    """The canonical name of a delta-ray scheme ("size:5.0" -> "size:5", as larserve writes it)."""
    scheme, mev = parse_delta_rays(value)
    if mev is None:
        return scheme
    return DELTA_RAYS_SIZE + np.format_float_positional(mev, trim="-")


def _str(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray) and v.dtype.kind in "SO" and v.size == 1:
        return _str(v.reshape(-1)[0])
    return v


def _plain(v):
    """An attribute value as a JSON-able Python value."""
    v = _str(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


class PatchSource:
    """One patches file or directory. `arrays[name]` supports len(), slicing and fancy indexing
    with sorted indices; `attrs` holds the root attributes of the original HDF5 file."""

    def __init__(self, path, arrays, attrs, n, closer=None):
        self.path = path
        self.arrays = arrays
        self.attrs = attrs
        self._closer = closer
        self.n = n

    def __len__(self):
        return self.n

    def has(self, name):
        return name in self.arrays

    def read(self, name, start=0, stop=None):
        """Rows [start, stop) of one dataset as a numpy array."""
        stop = self.n if stop is None else stop
        a = np.asarray(self.arrays[name][start:stop])
        if name == "patches" and a.ndim == 3:  # [N, 48, 48] written without the channel axis
            a = a[..., None]
        return a

    def size_bytes(self):
        if os.path.isdir(self.path):
            return sum(os.path.getsize(os.path.join(self.path, f)) for f in os.listdir(self.path))
        return os.path.getsize(self.path)

    def close(self):
        if self._closer is not None:
            self._closer()
            self._closer = None


def _check(path, arrays, attrs):
    fmt = _str(attrs.get("format", PATCH_FORMAT))
    if fmt != PATCH_FORMAT:
        raise ValueError(f"{path}: format is {fmt!r}, not {PATCH_FORMAT!r}: make it with `larserve patches`")
    ver = int(_plain(attrs.get("schema_version", PATCH_SCHEMA_VERSION)))
    if ver != PATCH_SCHEMA_VERSION:
        raise ValueError(f"{path}: patches schema_version {ver}, this reader knows {PATCH_SCHEMA_VERSION}: "
                         "regenerate the file with this larserve version or update python/patchdata.py")
    for name in REQUIRED:
        if name not in arrays:
            raise ValueError(f"{path}: dataset {name!r} missing (required: {', '.join(REQUIRED)})")
    shape = tuple(arrays["patches"].shape)
    if shape[1:] not in (PATCH_SHAPE, PATCH_SHAPE[:2]):
        raise ValueError(f"{path}: patches have shape {shape}, expected [N, 48, 48, 1]")
    for key, want in (("patch_wires", 48), ("patch_drifts", 48)):
        if key in attrs and int(_plain(attrs[key])) != want:
            raise ValueError(f"{path}: {key} = {_plain(attrs[key])}, the model needs {want}")
    if "class_names" in attrs:
        names = tuple(str(_str(attrs["class_names"])).split(","))
        if names != CLASS_NAMES:
            raise ValueError(f"{path}: class_names {names}, expected {CLASS_NAMES}")
    n = shape[0]
    if "n_patches" in attrs:  # rows written; the datasets may be longer only if a write failed
        n = int(_plain(attrs["n_patches"]))
        if int(_plain(attrs.get("complete", 1))) != 1:
            print(f"warning: {path} is incomplete (its writer was interrupted); using its first {n} "
                  "patches", file=sys.stderr)
    for name, a in arrays.items():
        if len(a) < n or (len(a) != n and "n_patches" not in attrs):
            raise ValueError(f"{path}: dataset {name!r} has {len(a)} rows, expected {n}")
    return n


def open_h5(path):
    try:
        import h5py
    except ImportError as e:
        raise SystemExit(f"{path}: reading .h5 needs h5py ({e}); convert the file with "
                         "python/patches_to_npy.py on a machine that has it and train from the .npy directory")
    f = h5py.File(path, "r")
    attrs = {k: _plain(v) for k, v in f.attrs.items()}
    arrays = {name: f[name] for name in ("patches",) + PER_PATCH if name in f}
    try:
        n = _check(path, arrays, attrs)
    except Exception:
        f.close()
        raise
    return PatchSource(path, arrays, attrs, n, f.close)


def open_npy_dir(path):
    meta_path = os.path.join(path, "meta.json")
    attrs = {}
    if os.path.exists(meta_path):
        with open(meta_path) as fh:
            attrs = json.load(fh).get("attrs", {})
    arrays = {}
    for name in ("patches",) + PER_PATCH:
        p = os.path.join(path, name + ".npy")
        if os.path.exists(p):
            arrays[name] = np.load(p, mmap_mode="r")
    return PatchSource(path, arrays, attrs, _check(path, arrays, attrs))


def open_npz(path):
    z = np.load(path, allow_pickle=False)
    attrs = {}
    if "meta_json" in z.files:
        attrs = json.loads(str(z["meta_json"])).get("attrs", {})
    # np.load of an .npz reads each member on access: keep the NpzFile and read members once.
    arrays = {name: z[name] for name in ("patches",) + PER_PATCH if name in z.files}
    return PatchSource(path, arrays, attrs, _check(path, arrays, attrs), z.close)


def open_patches(path):
    """Opens an .h5 patches file, a directory of .npy files (patches.npy, label.npy, ...), one
    .npy of that directory, or an .npz."""
    if os.path.isdir(path):
        return open_npy_dir(path)
    if path.endswith(".npy"):
        return open_npy_dir(os.path.dirname(os.path.abspath(path)))
    if path.endswith(".npz"):
        return open_npz(path)
    return open_h5(path)
