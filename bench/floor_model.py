#!/usr/bin/env python3
"""Writes a model repository with one near-trivial model, to measure a server's own latency floor
with messages the size of EmTrackMichelId's (bench/server_bench.py --model-repository DIR --model
floor9k): input `main_input` [N,48,48,1] float32 (9,216 bytes a patch, as the CNN's), output `y`
[N,3] float32 (Flatten then a 2304x3 MatMul: 6,912 multiply-adds a patch, about 1/2000 of the
compact CNN's). Needs the onnx and numpy Python packages.

    .venv/bin/python bench/floor_model.py DIR
"""
import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CONFIG = """name: "floor9k"
platform: "onnxruntime_onnx"
max_batch_size: 1024
input [ { name: "main_input" data_type: TYPE_FP32 dims: [ 48, 48, 1 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 3 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
dynamic_batching {}
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("repository", help="model repository folder to write (floor9k/ inside it)")
    a = ap.parse_args()
    x = helper.make_tensor_value_info("main_input", TensorProto.FLOAT, ["N", 48, 48, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    w = numpy_helper.from_array(np.full((48 * 48, 3), 1e-3, np.float32), "W")
    graph = helper.make_graph([helper.make_node("Flatten", ["main_input"], ["flat"], axis=1),
                               helper.make_node("MatMul", ["flat", "W"], ["y"])], "floor9k", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    os.makedirs(os.path.join(a.repository, "floor9k", "1"), exist_ok=True)
    onnx.save(model, os.path.join(a.repository, "floor9k", "1", "model.onnx"))
    with open(os.path.join(a.repository, "floor9k", "config.pbtxt"), "w") as f:
        f.write(CONFIG)
    print(f"wrote {os.path.join(a.repository, 'floor9k')}")


if __name__ == "__main__":
    main()
