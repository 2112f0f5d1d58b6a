"""Explicit quantisation end to end: a QDQ model made by onnxruntime's quantize_static runs int8 on
the cpu backend without calibration data, and agrees with onnxruntime running the same QDQ model.

EmTrackMichelId (random weights, python/make_test_models.py) is quantised with QuantFormat.QDQ,
symmetric QInt8 activations and per-channel QInt8 weights, calibrated on random patches.
`larserve build --precision int8` folds the Q/DQ pairs (fold-qdq) into int8 conv and dense
layers. Tolerances:
  - against onnxruntime on the QDQ model: both end in the model's own output QuantizeLinear /
    DequantizeLinear (kept exact by larserve), so every output is a multiple of its output scale;
    larserve drops the rounding of pairs that feed no int8 kernel (logits before Softmax /
    Sigmoid, at most half an int8 step there), which can move an output across one rounding
    boundary: each output within one output step (Softmax 1/127 = 0.0079 < 1e-2) and on average
    within half a step;
  - against the fp32 model: no further from it than onnxruntime's QDQ result is, plus one output
    step, and within 5e-2 absolute.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
# Part of python/requirements.txt (needs ml_dtypes and onnx >= 1.13 in the venv): no skip.
from onnxruntime.quantization import (  # noqa: E402
    CalibrationDataReader, QuantFormat, QuantType, quantize_static)

LARSERVE = os.environ.get("LARSERVE", "build/cpu-release/src/apps/larserve")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))

import make_test_models  # noqa: E402

OUTPUTS = ["em_trk_none_netout/Softmax", "michel_netout/Sigmoid"]
DENSE_NODES = ["conv2d", "dense128_mm", "dense32", "em_trk_none", "michel"]


def patches(rng, n):
    # The distribution test_parity.py uses: ADC-like values scaled to about [-0.3, 1].
    return rng.uniform(-10, 30, size=(n, 48, 48, 1)).astype(np.float32) / 30


class RandomPatches(CalibrationDataReader):
    def __init__(self, seed, batches, batch):
        rng = np.random.default_rng(seed)
        self.data = iter([{"main_input": patches(rng, batch)} for _ in range(batches)])

    def get_next(self):
        return next(self.data, None)


def cpu_has_fast_int8():
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512bw" in flags and "avx512_vnni" in flags


def run(args):
    r = subprocess.run([LARSERVE] + args, capture_output=True, text=True)
    assert r.returncode == 0, f"larserve {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def infer(model, x, tmp, extra=()):
    out_dir = tmp / ("out_" + os.path.basename(model).replace(".", "_"))
    out_dir.mkdir(exist_ok=True)
    np.save(tmp / "x.npy", x)
    stdout = run(["infer", model, "-i", f"main_input={tmp / 'x.npy'}", "-o", str(out_dir), *extra])
    outs = {}
    for line in stdout.splitlines():  # "NAME [shape] -> PATH"
        outs[line.split(" ")[0]] = np.load(line.split(" -> ")[-1])
    return outs


def ort_run(model, x):
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"main_input": x})))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("qdq")
    fp32 = str(d / "emtrkmichel_random.onnx")
    onnx.save(make_test_models.emtrkmichel(np.random.default_rng(2026)), fp32)
    qdq = str(d / "emtrkmichel_qdq.onnx")
    quantize_static(fp32, qdq, RandomPatches(7, 4, 8), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    per_channel=True,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return fp32, qdq


def output_steps(qdq):
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(qdq).graph.initializer}
    return {name: float(inits[name + "_scale"]) for name in OUTPUTS}


def test_int8_build_needs_no_calibration_and_folds_every_pair(models, tmp_path):
    _, qdq = models
    plan = str(tmp_path / "qdq_int8.plan")
    verbose = run(["build", qdq, "-o", plan, "--backend", "cpu", "--precision", "int8",
                   "--verbose"])
    # --verbose names every folded pair: one per activation tensor quantize_static quantised,
    # except the two graph outputs' pairs, which stay (exact output quantisation).
    folded = [line for line in verbose.splitlines() if "(QuantizeLinear) -> " in line]
    assert len(folded) >= 10, verbose
    assert "left node 'em_trk_none_netout/Softmax_QuantizeLinear'" in verbose
    assert "recorded the int8 weight scales" in verbose
    report = json.loads(run(["build", qdq, "-o", plan, "--backend", "cpu", "--precision", "int8",
                             "--json"]))
    tactics = {}
    for seg in report["segments"]:
        for node, tactic in zip(seg["nodes"], seg["tactics"]):
            tactics[node.split("'")[1]] = (seg["backend"], tactic)
    for name in DENSE_NODES:
        backend, tactic = tactics[name]
        assert backend == "cpu", (name, tactic)
        if cpu_has_fast_int8():
            assert tactic.endswith(" int8"), (name, tactic)
    # Only the two output pairs are left of the model's Q/DQ nodes.
    assert sum(n.endswith("QuantizeLinear") for n in tactics) == 2, tactics


def test_int8_matches_onnxruntime_on_the_qdq_model(models, tmp_path):
    fp32, qdq = models
    plan = str(tmp_path / "qdq_int8.plan")
    run(["build", qdq, "-o", plan, "--backend", "cpu", "--precision", "int8"])
    x = patches(np.random.default_rng(11), 64)  # not the calibration data
    got = infer(plan, x, tmp_path)
    direct = infer(qdq, x, tmp_path, ["--backend", "cpu", "--precision", "int8"])
    want_qdq = ort_run(qdq, x)
    want_fp32 = ort_run(fp32, x)
    steps = output_steps(qdq)
    for name in OUTPUTS:
        step = steps[name]
        # A plan computes what the build did (weight scales and ranges travel in it).
        np.testing.assert_array_equal(got[name], direct[name])
        diff = np.abs(got[name] - want_qdq[name])
        print(f"{name}: max |larserve int8 - onnxruntime QDQ| = {diff.max():.4g} "
              f"(output step {step:.4g}), mean {diff.mean():.3g}; "
              f"max |larserve int8 - fp32| = {np.abs(got[name] - want_fp32[name]).max():.4g}, "
              f"max |onnxruntime QDQ - fp32| = {np.abs(want_qdq[name] - want_fp32[name]).max():.4g}")
        assert diff.max() <= step * 1.001, name
        assert diff.mean() <= step / 2, name
        if name.endswith("Softmax"):
            assert diff.max() < 1e-2
        ort_err = np.abs(want_qdq[name] - want_fp32[name]).max()
        our_err = np.abs(got[name] - want_fp32[name]).max()
        assert our_err <= ort_err + step * 1.001, name
        assert our_err < 5e-2, name


def test_fp32_build_keeps_the_exact_qdq_semantics(models, tmp_path):
    _, qdq = models
    x = patches(np.random.default_rng(12), 8)
    got = infer(qdq, x, tmp_path, ["--backend", "cpu"])
    want = ort_run(qdq, x)
    for name in OUTPUTS:
        # The Q/DQ nodes run on the reference kernels: onnxruntime's result to float rounding
        # (outputs are multiples of the output step, so any difference would be a whole step).
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-6)
