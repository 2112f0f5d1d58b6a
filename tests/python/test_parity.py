"""FP32 parity: larserve (reference backend, and cpu when built in) against onnxruntime and PyTorch.

The production-architecture EmTrackMichelId (random weights, python/make_test_models.py) and a
torchvision ResNet-18 (random weights, exported by PyTorch at opset 17) must give the same
outputs as onnxruntime and as PyTorch itself to 1e-5 relative (plus a small absolute floor for
values near zero, stated per comparison).
"""
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

LARSERVE = os.environ.get("LARSERVE", "build/cpu-release/src/apps/larserve")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))

import make_test_models  # noqa: E402


def larserve_infer(model, inputs, tmp, backend):
    args = [LARSERVE, "infer", model, "-o", str(tmp), "--backend", backend]
    for name, arr in inputs.items():
        path = tmp / (name.replace("/", "_") + ".in.npy")
        np.save(path, arr)
        args += ["-i", f"{name}={path}"]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0 and "unknown backend" in r.stderr:
        pytest.skip(f"backend {backend} not built")
    assert r.returncode == 0, r.stderr
    outs = {}
    for line in r.stdout.splitlines():  # "NAME [shape] -> PATH"
        outs[line.split(" ")[0]] = np.load(line.split(" -> ")[-1])
    return outs


def assert_close(got, want, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def emtrk(tmp_path_factory):
    onnx = pytest.importorskip("onnx")
    d = tmp_path_factory.mktemp("em")
    path = d / "emtrkmichel_random.onnx"
    onnx.save(make_test_models.emtrkmichel(np.random.default_rng(2026)), path)
    return str(path)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_emtrkmichel_matches_onnxruntime(emtrk, tmp_path, backend):
    rng = np.random.default_rng(1)
    x = rng.uniform(-10, 30, size=(5, 48, 48, 1)).astype(np.float32) / 30
    sess = ort.InferenceSession(emtrk, providers=["CPUExecutionProvider"])
    want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"main_input": x})))
    got = larserve_infer(emtrk, {"main_input": x}, tmp_path, backend)
    for name in ["em_trk_none_netout/Softmax", "michel_netout/Sigmoid"]:
        # Probabilities in (0, 1): 1e-5 relative with a 1e-7 floor.
        assert_close(got[name], want[name], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_resnet18_matches_onnxruntime_and_pytorch(tmp_path, backend):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    # Push the batch-norm statistics away from the identity so that folding them is tested.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    x = torch.randn(2, 3, 64, 64)
    path = str(tmp_path / "resnet18.onnx")
    torch.onnx.export(model, x, path, opset_version=17, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    with torch.no_grad():
        want_torch = model(x).numpy()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    want_ort = sess.run(None, {"input": x.numpy()})[0]
    got = larserve_infer(path, {"input": x.numpy()}, tmp_path, backend)["logits"]
    # Logits of order 1 after 18 layers: 1e-5 relative with a 1e-5 absolute floor (sums of
    # thousands of products in another order differ by a few float32 ulps of the terms).
    assert_close(got, want_ort, rtol=1e-5, atol=1e-5)
    assert_close(got, want_torch, rtol=1e-5, atol=1e-5)
