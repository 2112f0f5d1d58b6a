"""python/train.py end to end on CPU: a few training steps of both architectures on a small
patches file, then the exported ONNX checked for the production names and shapes, parameter
counts, softmax rows summing to 1, and `larserve infer` giving PyTorch's scores to 1e-5 relative
(PyTorch evaluated in float64, the exact scores of the trained weights).

The patches come from `larserve sim` + `larserve patches` when $LARSERVE has that command, else
from a synthetic file with the exact `larserve-patches` schema 1 layout (written here with h5py).
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

LARSERVE = os.environ.get("LARSERVE", "build/cpu-release/src/apps/larserve")
HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.join(HERE, "..", "..", "python")
sys.path.insert(0, PYDIR)

import patchdata  # noqa: E402
import train  # noqa: E402

OUT_EM, OUT_MI = train.OUTPUT_NAMES


def larserve_ok():
    return os.path.isfile(LARSERVE) and os.access(LARSERVE, os.X_OK)


def larserve_has_patches():
    if not larserve_ok():
        return False
    r = subprocess.run([LARSERVE, "patches", "--help"], capture_output=True, text=True)
    # An unknown subcommand followed by --help prints the top-level help with status 0.
    return r.returncode == 0 and re.search(r"Usage:\s*\S+\s+patches\b", r.stdout) is not None


def write_synthetic_patches(path, n_events=6, per_event=48, seed=0):
    """A schema-exact patches file whose classes are learnable: track = a thin straight line
    through the centre, em = a blob of scattered charge (Michel: a small blob), none = noise."""
    rng = np.random.default_rng(seed)
    n = n_events * per_event
    label = rng.integers(0, 3, n).astype(np.uint8)
    michel = ((label == 1) & (rng.uniform(size=n) < 0.3)).astype(np.uint8)
    category = np.where(label == 0, np.where(rng.uniform(size=n) < 0.1, 4, 1),
                        np.where(label == 1, np.where(michel == 1, 3, 2), 0)).astype(np.uint8)
    patches = rng.normal(0, 0.15, size=(n, 48, 48, 1)).astype(np.float32)
    yy, xx = np.mgrid[0:48, 0:48] - 23.5
    for i in range(n):
        if label[i] == 0:
            a = rng.uniform(0, np.pi)
            d = np.abs(-np.sin(a) * xx + np.cos(a) * yy)
            patches[i, :, :, 0] += np.where(d < 1.0, rng.uniform(3, 8), 0.0)
        elif label[i] == 1:
            r = 3.0 if michel[i] else 8.0
            k = rng.poisson(40 if michel[i] else 120)
            px = np.clip(rng.normal(0, r, k) + 23.5, 0, 47).astype(int)
            py = np.clip(rng.normal(0, r, k) + 23.5, 0, 47).astype(int)
            np.add.at(patches[i, :, :, 0], (px, py), rng.uniform(1, 6, k))
    patches = np.clip(patches, -5, 15)
    with h5py.File(path, "w") as f:
        a = f.attrs
        a["format"] = "larserve-patches"
        a["schema_version"] = np.int32(1)
        a["patch_wires"], a["patch_drifts"], a["drift_window"] = np.int32(48), np.int32(48), np.int32(6)
        a["adc_min"], a["adc_max"] = np.float32(-10), np.float32(30)
        a["out_min"], a["out_max"], a["zero_level"] = np.float32(-5), np.float32(15), np.float32(0)
        a["selection"] = json.dumps({"synthetic": True})
        a["class_names"] = "track,em,none"
        a["larserve_version"], a["source"] = "synthetic", "none"
        a["block_rows"], a["n_patches"], a["complete"] = np.int32(1024), np.int64(n), np.int32(1)
        f["patches"] = patches
        f["label"] = label
        f["michel"] = michel
        f["category"] = category
        f["event"] = np.repeat(np.arange(n_events, dtype=np.int64), per_event)
        f["apa"] = np.zeros(n, np.int16)
        f["plane"] = (np.arange(n) % 3).astype(np.uint8)
        f["wire"] = rng.integers(0, 480, n).astype(np.int32)
        f["peak_tick"] = rng.uniform(0, 6000, n).astype(np.float32)
        f["integral"] = rng.uniform(10, 1000, n).astype(np.float32)
        f["truth_fraction"] = rng.uniform(0.5, 1, n).astype(np.float32)
        f["kind"] = (label == 2).astype(np.uint8)
    return path


@pytest.fixture(scope="module")
def patches_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("patches")
    if larserve_has_patches():
        ev, p = d / "ev.h5", d / "p.h5"
        subprocess.run([LARSERVE, "sim", "-n", "1", "-o", str(ev), "--seed", "5"], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([LARSERVE, "patches", str(ev), "-o", str(p)], check=True, stdout=subprocess.DEVNULL)
        return str(p)
    return str(write_synthetic_patches(d / "synthetic.h5"))


def run_train(data, out, arch, *extra):
    args = [str(data), "--arch", arch, "--device", "cpu", "--epochs", "1", "--max-steps", "3",
            "--batch", "32", "--eval-batch", "256", "--limit", "600", "--seed", "3", "-o", str(out),
            "--checkpoint", str(out) + ".pt", *extra]
    side = train.main(args)
    ckpt = torch.load(str(out) + ".pt")
    kw = dict(zip(("c1", "c2", "hidden"), ckpt.get("width") or []))
    net = train.ARCHS[arch](target=ckpt.get("target", "3class"), **kw)
    net.load_state_dict(ckpt["state_dict"])
    return side, net.eval()


@pytest.fixture(scope="module", params=["production", "compact"])
def trained(request, patches_file, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "model.onnx"
    side, net = run_train(patches_file, out, request.param)
    return request.param, str(out), side, net


def sample_patches(patches_file, n=8):
    src = patchdata.open_patches(patches_file)
    idx = np.linspace(0, len(src) - 1, n).astype(int)
    x = np.stack([src.read("patches", i, i + 1)[0] for i in idx]).astype(np.float32)
    src.close()
    return x


def torch_scores(net, x):
    """The trained PyTorch model's scores, computed in float64: float32 PyTorch on this CPU (a
    generic BLAS) is itself ~1e-5 relative off for the production model's 92,928-term sums."""
    return train.reference_scores(net, x)


def test_onnx_names_shapes_parameters(trained):
    arch, path, side, net = trained
    m = onnx.load(path)
    onnx.checker.check_model(m)
    inits = {t.name for t in m.graph.initializer}
    inputs = [i for i in m.graph.input if i.name not in inits]
    assert [i.name for i in inputs] == ["main_input"]
    dims = inputs[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [48, 48, 1]
    assert inputs[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [o.name for o in m.graph.output] == [OUT_EM, OUT_MI]
    for o, width in zip(m.graph.output, (3, 1)):
        d = o.type.tensor_type.shape.dim
        assert d[0].dim_param and d[1].dim_value == width
        assert o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) == 17
    # Only ops the larserve engine runs.
    allowed = {"Conv", "Gemm", "MatMul", "Add", "Relu", "MaxPool", "AveragePool", "Flatten", "Reshape",
               "Transpose", "Concat", "Softmax", "Sigmoid", "BatchNormalization", "Dropout", "Identity"}
    assert {n.op_type for n in m.graph.node} <= allowed
    onnx_params = sum(onnx.numpy_helper.to_array(t).size for t in m.graph.initializer)
    if arch == "production":
        assert side["parameters"] == 11_900_420
        assert onnx_params == 11_900_420
    else:
        assert side["parameters"] * 10 <= 11_900_420
        # Batch norm folded into the convs: each BN's scale and shift become the conv's bias.
        bn = sum(mod.num_features for mod in net.modules() if isinstance(mod, torch.nn.BatchNorm2d))
        assert onnx_params == side["parameters"] - bn
        assert side["flops_per_patch"] < 28_000_000 / 4
    assert side["onnx"]["onnx_parameters"] == onnx_params
    assert side["onnx"]["onnxruntime"].startswith("ok") or "skipped" in side["onnx"]["onnxruntime"]


def test_sidecar(trained):
    arch, path, side, _ = trained
    with open(os.path.splitext(path)[0] + ".json") as fh:
        j = json.load(fh)
    for key in ("arch", "parameters", "data", "epochs", "train_seconds", "device_name", "final_train",
                "final_val", "seed", "torch_version", "flops_per_patch"):
        assert key in j, key
    assert j["arch"] == arch and j["seed"] == 3 and j["steps"] == 3
    assert j["data"][0]["bytes"] > 0
    assert j["n_val"] > 0 and 0 <= j["final_val"]["acc"] <= 1


def test_onnxruntime_softmax_and_torch(trained, patches_file):
    ort = pytest.importorskip("onnxruntime")
    arch, path, side, net = trained
    x = sample_patches(patches_file)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    em, mi = sess.run([OUT_EM, OUT_MI], {"main_input": x})
    assert em.shape == (len(x), 3) and mi.shape == (len(x), 1)
    np.testing.assert_allclose(em.sum(axis=1), 1.0, rtol=0, atol=1e-6)
    assert ((mi > 0) & (mi < 1)).all()
    want_em, want_mi = torch_scores(net, x)
    # onnxruntime's Sigmoid is up to ~1e-7 absolute off for tiny values: 1e-6 floor.
    np.testing.assert_allclose(em, want_em, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mi, want_mi, rtol=1e-5, atol=1e-6)


def test_larserve_infer_matches_torch(trained, patches_file, tmp_path):
    if not larserve_ok():
        pytest.skip(f"no larserve binary at {LARSERVE}")
    arch, path, side, net = trained
    x = sample_patches(patches_file)
    np.save(tmp_path / "x.npy", x)
    r = subprocess.run([LARSERVE, "infer", path, "-i", f"main_input={tmp_path / 'x.npy'}", "-o", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    outs = {}
    for line in r.stdout.splitlines():  # "NAME [shape] -> PATH"
        outs[line.split(" ")[0]] = np.load(line.split(" -> ")[-1])
    assert set(outs) == {OUT_EM, OUT_MI}
    want_em, want_mi = torch_scores(net, x)
    np.testing.assert_allclose(outs[OUT_EM].sum(axis=1), 1.0, rtol=0, atol=1e-6)
    np.testing.assert_allclose(outs[OUT_EM], want_em, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(outs[OUT_MI], want_mi, rtol=1e-5, atol=1e-7)


def test_npy_conversion_and_training(patches_file, tmp_path):
    """patches_to_npy.py output (directory and .npz) loads like the .h5 and trains."""
    import patches_to_npy
    patches_to_npy.main([patches_file, "-o", str(tmp_path / "npy")])
    patches_to_npy.main([patches_file, "-o", str(tmp_path / "p.npz"), "--dtype", "float32"])
    h5 = patchdata.open_patches(patches_file)
    for p in (tmp_path / "npy", tmp_path / "npy" / "patches.npy", tmp_path / "p.npz"):
        s = patchdata.open_patches(str(p))
        assert len(s) == len(h5)
        assert s.attrs["format"] == "larserve-patches"
        for name in ("label", "michel", "event", "plane"):
            np.testing.assert_array_equal(s.read(name, 0, 100), h5.read(name, 0, 100))
        np.testing.assert_allclose(s.read("patches", 0, 50), h5.read("patches", 0, 50), rtol=1e-3, atol=1e-2)
    assert np.load(tmp_path / "npy" / "patches.npy", mmap_mode="r").dtype == np.float16
    h5.close()
    side = train.main([str(tmp_path / "npy"), "--arch", "compact", "--device", "cpu", "--epochs", "1",
                       "--max-steps", "2", "--batch", "32", "--limit", "2048", "-o", str(tmp_path / "c.onnx"),
                       "--no-verify"])
    assert side["steps"] == 2


def test_validation_split_is_by_event():
    rng = np.random.default_rng(0)
    keys = np.stack([rng.integers(0, 2, 1000), rng.integers(0, 20, 1000), rng.integers(0, 6, 1000),
                     rng.integers(0, 3, 1000)], axis=1)
    tr, va, level = train.split_groups(keys, 0.2, seed=1)
    assert level == "event" and len(tr) + len(va) == 1000 and len(va) > 0
    ev = lambda idx: {tuple(k) for k in keys[idx, :2]}  # noqa: E731
    assert not (ev(tr) & ev(va))
    # One event only: falls back to (event, apa), still disjoint.
    keys[:, :2] = 0
    tr, va, level = train.split_groups(keys, 0.2, seed=1)
    assert level == "event+apa" and not ({tuple(k) for k in keys[tr, :3]} & {tuple(k) for k in keys[va, :3]})


def test_seeded_runs_are_identical(patches_file, tmp_path):
    outs = []
    for i in range(2):
        train.main([patches_file, "--arch", "compact", "--device", "cpu", "--epochs", "1", "--max-steps", "2",
                    "--batch", "32", "--limit", "2048", "--seed", "11", "-o", str(tmp_path / f"s{i}.onnx"),
                    "--checkpoint", str(tmp_path / f"s{i}.pt"), "--no-verify"])
        outs.append(torch.load(str(tmp_path / f"s{i}.pt"))["state_dict"])
    for k in outs[0]:
        assert torch.equal(outs[0][k], outs[1][k]), k


# ------------------------------------------------------------------------- --target 5class

def larserve_infer(path, x, tmp_path):
    np.save(tmp_path / "x.npy", x)
    r = subprocess.run([LARSERVE, "infer", path, "-i", f"main_input={tmp_path / 'x.npy'}", "-o", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return {line.split(" ")[0]: np.load(line.split(" -> ")[-1]) for line in r.stdout.splitlines()}


@pytest.fixture(scope="module", params=["production", "compact"])
def trained5(request, patches_file, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param + "5") / "model.onnx"
    side, net = run_train(patches_file, out, request.param, "--target", "5class", "--class-weights", "auto",
                          "--max-steps", "2")
    return request.param, str(out), side, net


def test_5class_export(trained5, patches_file, tmp_path):
    """5-way head, exported under the production interface: [N,3] merged softmax and [N,1] P(michel)."""
    arch, path, side, net = trained5
    assert side["target"] == "5class" and side["steps"] == 2
    assert net.em_trk_none.out_features == 5 and net.michel is None
    with open(os.path.splitext(path)[0] + ".json") as fh:
        assert json.load(fh)["target"] == "5class"
    assert torch.load(path + ".pt")["target"] == "5class"
    va = side["final_val"]
    assert 0 <= va["acc"] <= 1 and 0 <= va["acc5"] <= 1 and np.array(va["confusion5"]).shape == (5, 5)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    inits = {t.name for t in m.graph.initializer}
    inputs = [i for i in m.graph.input if i.name not in inits]
    assert [i.name for i in inputs] == ["main_input"]
    assert [o.name for o in m.graph.output] == [OUT_EM, OUT_MI]
    for o, width in zip(m.graph.output, (3, 1)):
        d = o.type.tensor_type.shape.dim
        assert d[0].dim_param and d[1].dim_value == width
        assert o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    allowed = {"Conv", "Gemm", "MatMul", "Add", "Relu", "MaxPool", "AveragePool", "Flatten", "Reshape",
               "Transpose", "Concat", "Softmax", "BatchNormalization", "Dropout", "Identity"}
    assert {n.op_type for n in m.graph.node} <= allowed
    onnx_params = sum(onnx.numpy_helper.to_array(t).size for t in m.graph.initializer)
    bn = sum(mod.num_features for mod in net.modules() if isinstance(mod, torch.nn.BatchNorm2d))
    assert onnx_params == side["parameters"] - bn + 5 * 3 + 5  # + the constant merge matrices
    if arch == "production":
        assert side["parameters"] == 11_900_420 + 2 * 33 - 33  # Dense 5 head, no Michel head

    x = sample_patches(patches_file)
    want_em, want_mi = torch_scores(net, x)
    np.testing.assert_allclose(want_em.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert ((want_mi >= 0) & (want_mi <= want_em[:, 1:2])).all()
    if not larserve_ok():
        pytest.skip(f"no larserve binary at {LARSERVE}")
    outs = larserve_infer(path, x, tmp_path)
    assert set(outs) == {OUT_EM, OUT_MI}
    em, mi = outs[OUT_EM], outs[OUT_MI]
    assert em.shape == (len(x), 3) and mi.shape == (len(x), 1)
    np.testing.assert_allclose(em.sum(axis=1), 1.0, rtol=0, atol=1e-6)
    assert ((mi >= 0) & (mi <= 1) & (mi <= em[:, 1:2])).all()
    np.testing.assert_allclose(em, want_em, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(mi, want_mi, rtol=1e-5, atol=1e-7)


def test_5class_labels_from_category(patches_file):
    ds = train.load_data([patches_file], torch.device("cpu"), limit=600, fine=True)
    src = patchdata.open_patches(patches_file)
    pick = np.unique(np.linspace(0, len(src) - 1, 600).round().astype(np.int64))
    cat, kind = src.read("category")[pick], src.read("kind")[pick]
    src.close()
    fine = ds.fine.numpy()
    np.testing.assert_array_equal(train.FINE_TO_3[fine], ds.label.numpy())
    assert (fine[cat == 4] == 1).all() and (fine[cat == 3] == 3).all() and (fine[kind == 1] == 4).all()
    np.testing.assert_array_equal(train.MERGE_5_TO_3.argmax(1), train.FINE_TO_3)


def test_delta_rays_size_labels(tmp_path):
    """`larserve patches --delta-rays size:E`: the file records the scheme, delta rays are
    labelled track or em (more of them track the larger E), every other label is as in the
    track scheme; train.py takes the labels as they are for 3class, and for 5class puts the
    short delta rays in the fine class track and merges the fine class delta into em."""
    if not larserve_has_patches():
        pytest.skip("needs the larserve binary")
    ev = tmp_path / "ev.h5"
    subprocess.run([LARSERVE, "sim", "-n", "1", "-o", str(ev), "--seed", "5"], check=True,
                   stdout=subprocess.DEVNULL)
    labels = {}
    for scheme in ("track", "size:2", "size:5", "size:20"):
        p = tmp_path / f"p_{scheme.replace(':', '_')}.h5"
        subprocess.run([LARSERVE, "patches", str(ev), "-o", str(p), "--balance", "none", "--planes", "W",
                        "--delta-rays", scheme], check=True, stdout=subprocess.DEVNULL)
        src = patchdata.open_patches(str(p))
        assert patchdata._str(src.attrs["delta_rays"]) == scheme
        labels[scheme], cat = src.read("label"), src.read("category")
        src.close()
    delta = cat == 4
    assert delta.any()
    n_track = {}
    for scheme, lab in labels.items():
        np.testing.assert_array_equal(lab[~delta], labels["track"][~delta])
        assert set(np.unique(lab[delta])) <= {0, 1}
        n_track[scheme] = int((lab[delta] == 0).sum())
    assert n_track["size:2"] <= n_track["size:5"] <= n_track["size:20"] <= n_track["track"]
    assert 0 < n_track["size:5"] < n_track["track"], n_track  # delta rays on both sides of 5 MeV
    p5 = str(tmp_path / "p_size_5.h5")
    ds = train.load_data([p5], torch.device("cpu"), limit=600)
    assert ds.delta_rays == "size:5"
    ds5 = train.load_data([p5], torch.device("cpu"), limit=600, fine=True)
    fine, lab = ds5.fine.numpy(), ds5.label.numpy()
    np.testing.assert_array_equal(train.FINE_TO_3_BY_DELTA["em"][fine], lab)
    delta_fine = train.FINE_NAMES.index("delta")
    assert (lab[fine == delta_fine] == 1).all() and (fine == delta_fine).any()
    np.testing.assert_array_equal(train.merge_matrix("size:5"), train.merge_matrix("em"))
    with pytest.raises(ValueError, match="size:0"):
        train.merge_matrix("size:0")
    with pytest.raises(SystemExit, match="delta-ray scheme"):
        train.load_data([p5, str(tmp_path / "p_size_2.h5")], torch.device("cpu"), limit=600)


def test_delta_rays_em_labels_and_merge(tmp_path):
    """`larserve patches --delta-rays em`: delta rays are labelled em, train.py reads the scheme
    from the file, and the 5class export merges P(delta) into em."""
    if not larserve_has_patches():
        pytest.skip("needs the larserve binary")
    ev, p = tmp_path / "ev.h5", tmp_path / "p.h5"
    subprocess.run([LARSERVE, "sim", "-n", "1", "-o", str(ev), "--seed", "5"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([LARSERVE, "patches", str(ev), "-o", str(p), "--delta-rays", "em"], check=True,
                   stdout=subprocess.DEVNULL)
    src = patchdata.open_patches(str(p))
    assert patchdata._str(src.attrs["delta_rays"]) == "em"
    cat, label = src.read("category"), src.read("label")
    src.close()
    assert (cat == 4).any() and (label[cat == 4] == 1).all() and (label[cat == 1] == 0).all()
    ds = train.load_data([str(p)], torch.device("cpu"), limit=600, fine=True)
    assert ds.delta_rays == "em"
    np.testing.assert_array_equal(train.FINE_TO_3_BY_DELTA["em"][ds.fine.numpy()], ds.label.numpy())
    out = tmp_path / "m.onnx"
    side, _ = run_train(str(p), out, "compact", "--target", "5class", "--width", "8,8,16")
    assert side["delta_rays"] == "em" and side["width"] == [8, 8, 16]
    import onnx
    from onnx import numpy_helper
    merges = [numpy_helper.to_array(i) for i in onnx.load(str(out)).graph.initializer
              if tuple(i.dims) == (5, 3)]
    assert len(merges) == 1
    np.testing.assert_array_equal(merges[0], train.merge_matrix("em"))
    assert merges[0][train.FINE_NAMES.index("delta")].argmax() == 1  # delta -> em
    with pytest.raises(SystemExit, match="delta-ray scheme"):
        train.load_data([str(p), str(write_synthetic_patches(tmp_path / "old.h5"))], torch.device("cpu"))
