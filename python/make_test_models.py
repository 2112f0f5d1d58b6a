#!/usr/bin/env python3
"""Writes small ONNX models with random weights for the optimiser and runtime tests.

    python/make_test_models.py OUTDIR

emtrkmichel.onnx: the production EmTrackMichelId architecture (FACTS.md section 2) as a
TensorFlow-to-ONNX export looks: NHWC input `main_input` [N,48,48,1], Transpose to NCHW, Conv 5x5x48
valid + ReLU, Transpose back to NHWC, Flatten, Dense 128 / 32 (ReLU, Dropout), heads Softmax(3)
and Sigmoid(1) with the production output names. Weights are random (seeded); the trained model
comes from python/train.py.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def emtrkmichel(rng):
    def w(name, shape, scale):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [
        w("conv_w", (48, 1, 5, 5), 0.2), w("conv_b", (48,), 0.05),
        w("d1_w", (44 * 44 * 48, 128), 0.005), w("d1_b", (128,), 0.05),
        # Gemm weights as PyTorch exports them: [out, in] with transB = 1.
        w("d2_w", (32, 128), 0.1), w("d2_b", (32,), 0.05),
        w("em_w", (3, 32), 0.3), w("em_b", (3,), 0.05),
        w("mi_w", (1, 32), 0.3), w("mi_b", (1,), 0.05),
    ]
    nodes = [
        helper.make_node("Transpose", ["main_input"], ["nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Conv", ["nchw", "conv_w", "conv_b"], ["conv"], kernel_shape=[5, 5], name="conv2d"),
        helper.make_node("Relu", ["conv"], ["conv_relu"], name="conv2d_relu"),
        helper.make_node("Transpose", ["conv_relu"], ["nhwc"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Dropout", ["nhwc"], ["drop0"], name="dropout_0"),
        helper.make_node("Flatten", ["drop0"], ["flat"], axis=1, name="flatten"),
        helper.make_node("MatMul", ["flat", "d1_w"], ["d1_mm"], name="dense128_mm"),
        helper.make_node("Add", ["d1_mm", "d1_b"], ["d1"], name="dense128_bias"),
        helper.make_node("Relu", ["d1"], ["d1_relu"], name="dense128_relu"),
        helper.make_node("Dropout", ["d1_relu"], ["drop1"], name="dropout_1"),
        helper.make_node("Gemm", ["drop1", "d2_w", "d2_b"], ["d2"], transB=1, name="dense32"),
        helper.make_node("Relu", ["d2"], ["d2_relu"], name="dense32_relu"),
        helper.make_node("Identity", ["d2_relu"], ["drop2"], name="dropout_2"),
        helper.make_node("Gemm", ["drop2", "em_w", "em_b"], ["em_logits"], transB=1, name="em_trk_none"),
        helper.make_node("Softmax", ["em_logits"], ["em_trk_none_netout/Softmax"], axis=-1, name="em_softmax"),
        helper.make_node("Gemm", ["drop2", "mi_w", "mi_b"], ["mi_logit"], transB=1, name="michel"),
        helper.make_node("Sigmoid", ["mi_logit"], ["michel_netout/Sigmoid"], name="michel_sigmoid"),
    ]
    g = helper.make_graph(
        nodes, "emtrkmichel",
        [helper.make_tensor_value_info("main_input", TensorProto.FLOAT, ["N", 48, 48, 1])],
        [helper.make_tensor_value_info("em_trk_none_netout/Softmax", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("michel_netout/Sigmoid", TensorProto.FLOAT, ["N", 1])],
        inits)
    m = helper.make_model(g, producer_name="larserve-tests", opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/models"
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(2026)
    onnx.save(emtrkmichel(rng), os.path.join(out, "emtrkmichel_random.onnx"))


if __name__ == "__main__":
    main()
