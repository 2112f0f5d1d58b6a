"""The events file written by `larserve sim` is readable with h5py as docs/formats.md says."""
import os
import subprocess

import h5py
import numpy as np
import pytest

LARSERVE = os.environ.get("LARSERVE", "build/cpu-release/src/apps/larserve")


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    path = tmp_path_factory.mktemp("ev") / "events.h5"
    subprocess.run([LARSERVE, "sim", "--events", "2", "--seed", "9", "-o", str(path), "--json"],
                   check=True, stdout=subprocess.DEVNULL)
    return path


def dense_plane(plane):
    """Densifies the ROIs of one plane into a (channels, ticks) array: the recipe in formats.md."""
    n_ch, n_t = plane.attrs["n_channels"], plane.attrs["n_ticks"]
    img = np.zeros((n_ch, n_t), dtype=np.float32)
    sig = plane["signal"][:]
    for ch, start, length, off in zip(plane["roi_channel"], plane["roi_start"],
                                      plane["roi_length"], plane["roi_offset"]):
        img[ch, start:start + length] = sig[off:off + length]
    return img


def test_header(events):
    with h5py.File(events, "r") as f:
        assert f.attrs["format"] == b"larserve-events" or f.attrs["format"] == "larserve-events"
        assert f.attrs["schema_version"] == 1
        assert f.attrs["n_events"] == 2
        assert f.attrs["complete"] == 1
        geo = f["geometry"]
        assert list(geo.attrs["channels"]) == [800, 800, 960]
        assert geo.attrs["n_ticks"] == 6000
        assert sorted(f["events"].keys()) == ["000000", "000001"]


def test_particles_and_truth(events):
    with h5py.File(events, "r") as f:
        ev = f["events/000001"]
        parts = ev["particles"][:]
        assert set(["id", "parent", "pdg", "process", "category", "kinetic_mev", "edep_mev"]) <= set(parts.dtype.names)
        assert (parts["id"] == np.arange(len(parts))).all()
        cats = ev["particles"].attrs["category_names"]
        cats = (cats.decode() if isinstance(cats, bytes) else cats).split(",")
        assert cats == ["none", "track", "shower", "michel", "delta"]
        w = ev["apa0/W"]
        ids = w["truth_id"][:]
        assert ids.max() < len(parts)
        # Truth categories of the collection plane: tracks and delta rays at least.
        present = set(parts["category"][ids[ids >= 0]])
        assert 1 in present and 4 in present


def test_signal_roundtrip(events):
    with h5py.File(events, "r") as f:
        w = f["events/000000/apa0/W"]
        img = dense_plane(w)
        assert img.shape == (960, 6000)
        # Where truth says a lot of charge arrived, the signal is well above the noise.
        ch, tk, q = w["truth_channel"][:], w["truth_tick"][:], w["truth_charge"][:]
        strong = q > 20000
        assert strong.sum() > 100
        assert np.median(img[ch[strong], tk[strong]]) > 10 * w.attrs["noise_rms_adc"]
