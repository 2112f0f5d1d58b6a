"""python/performance.py on hand-made results files whose confusion matrices, efficiencies,
purities and Michel numbers are known exactly, alone and in --compare mode."""
import json
import os
import sys

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
pytest.importorskip("matplotlib")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))

import performance  # noqa: E402

T, E, N = 0, 1, 2  # predicted classes
# (plane, category, predicted class, michel score); category 0 none 1 track 2 shower 3 michel 4 delta
HITS = [
    # plane W
    (2, 1, T, 0.1), (2, 1, T, 0.1), (2, 1, T, 0.1), (2, 1, E, 0.1),  # tracks
    (2, 4, T, 0.1), (2, 4, N, 0.1),                                  # delta rays (track-like)
    (2, 2, E, 0.7), (2, 2, E, 0.1), (2, 2, T, 0.1),                  # showers
    (2, 3, E, 0.9), (2, 3, E, 0.4),                                  # Michel electrons
    (2, 0, N, 0.1), (2, 0, N, 0.1), (2, 0, E, 0.1),                  # none
    (2, 255, T, 0.95),                                               # no truth: left out
    # plane U
    (0, 1, T, 0.2), (0, 1, T, 0.2),
    # plane V: no hits
]


def write_results(path, hits, model="test", kinetic=None):
    """kinetic: /hits/truth_kinetic_mev (float32 per hit), or None to leave it out (older files)."""
    n = len(hits)
    plane = np.array([h[0] for h in hits], np.uint8)
    cat = np.array([h[1] for h in hits], np.uint8)
    pred = np.array([h[2] for h in hits])
    scores = np.full((n, 4), 0.1, np.float32)
    scores[np.arange(n), pred] = 0.8
    scores[:, 3] = [h[3] for h in hits]
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "larserve-reco-results"
        f.attrs["schema_version"] = np.int32(1)
        f.attrs["larserve_version"] = "test"
        f.attrs["source"] = "events.h5"
        f.attrs["model"] = model
        g = f.create_group("hits")
        g["event"] = np.zeros(n, np.int64)
        g["apa"] = np.zeros(n, np.int16)
        g["plane"] = plane
        g["wire"] = np.arange(n, dtype=np.int32)
        g["peak_tick"] = np.linspace(100, 5000, n).astype(np.float32)
        g["width"] = np.full(n, 3.0, np.float32)
        g["integral"] = np.geomspace(20, 2000, n).astype(np.float32)
        g["category"] = cat
        g["truth_id"] = np.where(cat == 255, -1, np.arange(n)).astype(np.int32)
        g["truth_fraction"] = np.ones(n, np.float32)
        if kinetic is not None:
            g["truth_kinetic_mev"] = np.asarray(kinetic, np.float32)
        g["scores"] = scores
    return str(path)


def test_single_model_exact(tmp_path):
    res = write_results(tmp_path / "r.h5", HITS)
    out = tmp_path / "perf"
    rep = performance.main([res, "-o", str(out), "--labels", "prod"])
    m = rep["models"]["prod"]
    assert m["n_hits"] == len(HITS) and m["n_no_truth"] == 1
    w = m["planes"]["W"]
    assert w["confusion"] == [[4, 1, 1], [1, 4, 0], [0, 1, 2]]
    c = w["categories"]
    assert (c["track"]["n_true"], c["track"]["n_pred"], c["track"]["n_both"]) == (6, 5, 4)
    assert c["track"]["efficiency"] == pytest.approx(4 / 6) and c["track"]["purity"] == pytest.approx(4 / 5)
    assert c["em"]["efficiency"] == pytest.approx(4 / 5) and c["em"]["purity"] == pytest.approx(4 / 6)
    assert c["none"]["efficiency"] == pytest.approx(2 / 3) and c["none"]["purity"] == pytest.approx(2 / 3)
    # Michel at 0.5: true {0.9, 0.4}, selected {0.9 (Michel), 0.7 (shower)}; the no-truth 0.95 is out.
    assert (c["michel"]["n_true"], c["michel"]["n_pred"], c["michel"]["n_both"]) == (2, 2, 1)
    assert c["michel"]["efficiency"] == 0.5 and c["michel"]["purity"] == 0.5
    s = w["michel_score"]
    assert s["auc"] == pytest.approx(23 / 24)  # 0.9 beats all 12 others, 0.4 beats 11
    assert s["efficiency_at_target"] == 0.5 and s["purity_at_target"] == 1.0
    # Half of the true Michel hits: the 0.9 one alone is selected, nothing else (0.9 beats all).
    half = w["michel_at_half_efficiency"]
    assert half["threshold"] == pytest.approx(0.9) and half["purity"] == 1.0 and half["efficiency"] == 0.5
    assert half["selected_by_category"] == {"none": 0, "track": 0, "shower": 0, "michel": 1, "delta": 0}
    assert m["planes"]["U"]["michel_at_half_efficiency"] is None  # no Michel hit in U
    thr = np.float32(s["threshold_at_target"])
    assert thr < np.float32(0.9) and np.nextafter(thr, np.float32(1)) == np.float32(0.9)
    # Plane U: two tracks, both right; no Michel at all.
    u = m["planes"]["U"]
    assert u["confusion"] == [[2, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert u["categories"]["track"]["efficiency"] == 1.0 and u["categories"]["em"]["efficiency"] is None
    assert u["michel_score"]["auc"] is None and u["michel_score"]["threshold_at_target"] is None
    # Plane V: empty.
    assert m["planes"]["V"]["n_hits"] == 0 and m["planes"]["V"]["categories"]["track"]["purity"] is None
    # All planes = U + W.
    assert m["planes"]["all"]["confusion"] == [[6, 1, 1], [1, 4, 0], [0, 1, 2]]
    assert m["planes"]["all"]["michel_score"]["auc"] == pytest.approx(27 / 28)  # + two 0.2 negatives in U
    # The charge bins add up to the totals.
    for cat in ("track", "em", "none", "michel"):
        v = w["vs_charge"][cat]
        assert sum(v["n_true"]) == c[cat]["n_true"] and sum(v["n_pred"]) == c[cat]["n_pred"]
        assert sum(v["n_both"]) == c[cat]["n_both"]
    for f in ("performance.md", "performance.json", "confusion_prod.png", "eff_purity_vs_charge.png",
              "michel_roc.png"):
        assert (out / f).stat().st_size > 0, f
    with open(out / "performance.json") as fh:
        assert json.load(fh)["models"]["prod"]["planes"]["W"]["confusion"] == w["confusion"]
    md = (out / "performance.md").read_text()
    assert "| prod | W | track | 6 | 5 | 4 | 0.6667 | 0.8000 |" in md
    assert "| prod | W | michel | 2 | 2 | 1 | 0.5000 | 0.5000 |" in md


def test_clear_and_mixed_hits(tmp_path):
    """Hits whose dominant particle has less than --clear-fraction of the charge are reported apart."""
    res = write_results(tmp_path / "r.h5", HITS)
    with h5py.File(res, "r+") as f:
        tf = f["hits/truth_fraction"][:]
        tf[3] = 0.55   # the track called em
        tf[8] = 0.6    # the shower called track
        tf[0] = 0.95   # a right track, still clear at 0.9
        f["hits/truth_fraction"][...] = tf
    rep = performance.main([res, "-o", str(tmp_path / "perf"), "--labels", "m", "--no-plots"])
    w = rep["models"]["m"]["planes"]["W"]["by_truth_fraction"]
    assert w["clear"]["n_hits"] == 12 and w["mixed"]["n_hits"] == 2
    # Clear: 4 of 5 true tracks (3 tracks, 2 deltas; a delta called none) and every predicted
    # track right; em 4 of 4, of 5 predicted em (a none hit called em).
    assert w["clear"]["track"]["efficiency"] == pytest.approx(4 / 5) and w["clear"]["track"]["purity"] == 1.0
    assert w["clear"]["em"]["efficiency"] == 1.0 and w["clear"]["em"]["purity"] == pytest.approx(4 / 5)
    # Mixed: the track called em and the shower called track, both wrong.
    assert w["mixed"]["track"]["efficiency"] == 0.0 and w["mixed"]["track"]["purity"] == 0.0
    assert w["mixed"]["em"]["efficiency"] == 0.0 and w["mixed"]["em"]["purity"] == 0.0
    # Clear and mixed add up to the plane's counts.
    c = rep["models"]["m"]["planes"]["W"]["categories"]
    for cat in ("track", "em"):
        for k in ("n_true", "n_pred", "n_both"):
            assert w["clear"][cat][k] + w["mixed"][cat][k] == c[cat][k], (cat, k)
    md = (tmp_path / "perf" / "performance.md").read_text()
    assert "| m | W mixed | 2 | 0.0000 | 0.0000 | 0.0000 | 0.0000 |" in md
    # By share: 0.55 in 0.5-0.6, 0.6 in 0.6-0.7 (bins include their lower edge), both wrong; the
    # other 12 at 0.9 and above (the fixture's default 1.0, and 0.95).
    bins = {b["bin"]: b for b in rep["models"]["m"]["planes"]["W"]["by_share"]}
    assert [bins[k]["n_hits"] for k in ("below 0.5", "0.5-0.6", "0.6-0.7", "0.7-0.8", "0.8-0.9",
                                        "0.9 and above")] == [0, 1, 1, 0, 0, 12]
    assert bins["0.5-0.6"]["accuracy"] == 0.0 and bins["0.5-0.6"]["track_efficiency"] == 0.0
    assert bins["0.6-0.7"]["em_efficiency"] == 0.0 and bins["0.6-0.7"]["track_efficiency"] is None
    errors = sum(b["n_errors"] for b in bins.values())
    assert errors == 14 - sum(np.diag(rep["models"]["m"]["planes"]["W"]["confusion"]))
    assert bins["0.5-0.6"]["error_share"] == pytest.approx(1 / errors)
    assert bins["below 0.5"]["accuracy"] is None
    assert "| m | W | 0.5-0.6 | 1 | 0.000 | 0.000 | - |" in md


def test_threshold_option(tmp_path):
    res = write_results(tmp_path / "r.h5", HITS)
    rep = performance.main([res, "-o", str(tmp_path / "p"), "--michel-threshold", "0.3", "--no-plots"])
    c = next(iter(rep["models"].values()))["planes"]["W"]["categories"]["michel"]
    assert (c["n_true"], c["n_pred"], c["n_both"]) == (2, 3, 2)


def test_compare(tmp_path):
    a = write_results(tmp_path / "a.h5", HITS, model="production")
    perfect = [(p, cat, performance.TRUE3[cat] if cat != 255 else T, 0.9 if cat == 3 else 0.1)
               for p, cat, _, _ in HITS]
    b = write_results(tmp_path / "b.h5", perfect, model="compact")
    out = tmp_path / "cmp"
    rep = performance.main([a, "--compare", b, "--labels", "production,compact", "-o", str(out)])
    assert list(rep["models"]) == ["production", "compact"]
    cw = rep["models"]["compact"]["planes"]["W"]
    assert cw["confusion"] == [[6, 0, 0], [0, 5, 0], [0, 0, 3]]
    assert all(cw["categories"][k]["efficiency"] == 1.0 and cw["categories"][k]["purity"] == 1.0
               for k in ("track", "em", "none", "michel"))
    assert cw["michel_score"]["auc"] == 1.0
    # Same hits: agreement of the argmax classes, W 11 of 15 (the no-truth hit agrees too), U 2 of 2.
    agr = rep["agreement"]["production vs compact"]
    assert agr["W"] == pytest.approx(11 / 15) and agr["U"] == 1.0 and agr["V"] is None
    md = (out / "performance.md").read_text()
    assert "| compact | W | em | 5 | 5 | 5 | 1.0000 | 1.0000 |" in md
    for f in ("confusion_production.png", "confusion_compact.png", "eff_purity_vs_charge.png", "michel_roc.png"):
        assert (out / f).stat().st_size > 0, f


def test_rejects_other_formats(tmp_path):
    p = tmp_path / "x.h5"
    with h5py.File(p, "w") as f:
        f.attrs["format"] = "larserve-events"
        f.attrs["schema_version"] = 1
    with pytest.raises(SystemExit, match="larserve-reco-results"):
        performance.main([str(p), "-o", str(tmp_path / "o")])


def kinetic_of_deltas(small, large):
    """truth_kinetic_mev for HITS: the first W delta ray (called track) gets `small`, the second
    (called none) `large`; every other hit 100 MeV, and NaN for the hit without truth."""
    k = np.full(len(HITS), 100.0, np.float32)
    deltas = [i for i, h in enumerate(HITS) if h[1] == 4]
    assert len(deltas) == 2
    k[deltas[0]], k[deltas[1]] = small, large
    k[[i for i, h in enumerate(HITS) if h[1] == 255]] = np.nan
    return k


def test_delta_rays_size(tmp_path):
    """--delta-rays size:5: a delta ray below 5 MeV at creation is true track, one at or above
    (here exactly 5) true em; the other categories as before."""
    res = write_results(tmp_path / "r.h5", HITS, kinetic=kinetic_of_deltas(2.0, 5.0))
    out = tmp_path / "perf"
    rep = performance.main([res, "-o", str(out), "--labels", "m", "--no-plots", "--delta-rays", "size:5.0"])
    assert rep["delta_rays"] == "size:5"
    w = rep["models"]["m"]["planes"]["W"]
    # track row: 3 tracks + the 2 MeV delta (called track) and the track called em;
    # em row: 3 showers, 2 Michel and the 5 MeV delta (called none).
    assert w["confusion"] == [[4, 1, 0], [1, 4, 1], [0, 1, 2]]
    c = w["categories"]
    assert c["track"]["efficiency"] == pytest.approx(4 / 5) and c["em"]["efficiency"] == pytest.approx(4 / 6)
    md = (out / "performance.md").read_text()
    assert "delta -> track below 5 MeV of kinetic energy at creation, em at or above (size:5)" in md
    # A threshold below both delta rays is the em scheme, one above both the track scheme.
    for arg, same_as in (("size:1", "em"), ("size:10", "track")):
        a = performance.main([res, "-o", str(tmp_path / arg), "--no-plots", "--delta-rays", arg])
        b = performance.main([res, "-o", str(tmp_path / same_as), "--no-plots", "--delta-rays", same_as])
        assert a["models"]["r"]["planes"]["W"]["confusion"] == b["models"]["r"]["planes"]["W"]["confusion"]
        assert a["models"]["r"]["planes"]["W"]["confusion"] != w["confusion"]


def test_delta_rays_size_needs_kinetic_energy(tmp_path):
    res = write_results(tmp_path / "old.h5", HITS)  # no truth_kinetic_mev
    with pytest.raises(SystemExit, match="truth_kinetic_mev"):
        performance.main([res, "-o", str(tmp_path / "p"), "--no-plots", "--delta-rays", "size:5"])
    # The other schemes do not need it.
    performance.main([res, "-o", str(tmp_path / "q"), "--no-plots", "--delta-rays", "em"])


@pytest.mark.parametrize("bad", ["size:", "size:-1", "size:0", "size:abc", "foo", "size:inf"])
def test_delta_rays_bad_values(tmp_path, capsys, bad):
    res = write_results(tmp_path / "r.h5", HITS, kinetic=kinetic_of_deltas(2.0, 8.0))
    with pytest.raises(SystemExit) as e:
        performance.main([res, "-o", str(tmp_path / "p"), "--no-plots", "--delta-rays", bad])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"--delta-rays: delta-ray scheme '{bad}'" in err and "size:E" in err, err
