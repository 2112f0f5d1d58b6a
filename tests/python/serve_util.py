"""What the `larserve serve` end-to-end tests share (test_serve_grpc.py, test_serve_http.py,
test_reco_server.py): the binary and model under test, the test model's configuration, a server
started on loopback ports chosen at run time, the model repository, random patches and the
reference scores of our engine in-process (`larserve infer`)."""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

LARSERVE = os.environ.get("LARSERVE", "build/cpu-release/src/apps/larserve")
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = "emtrkmichel"
MODEL_FILE = os.path.join(SRC, "models", MODEL, "1", "model.onnx")
IN, OUT_EM, OUT_MI = "main_input", "em_trk_none_netout/Softmax", "michel_netout/Sigmoid"

CONFIG = """name: "emtrkmichel"
platform: "onnxruntime_onnx"
max_batch_size: 1024
input [ { name: "main_input" data_type: TYPE_FP32 format: FORMAT_NHWC dims: [ 48, 48, 1 ] } ]
output [ { name: "em_trk_none_netout/Softmax" data_type: TYPE_FP32 dims: [ 3 ] },
         { name: "michel_netout/Sigmoid" data_type: TYPE_FP32 dims: [ 1 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
dynamic_batching { max_queue_delay_microseconds: 20000 }
"""


def have_serve(http=False):
    """Whether LARSERVE exists and has `serve` (with http=True: its HTTP frontend too)."""
    if not os.path.exists(LARSERVE):
        return False
    r = subprocess.run([LARSERVE, "serve", "--help"], capture_output=True, text=True)
    return r.returncode == 0 and (not http or "--http-port" in r.stdout)


class Server:
    """larserve serve with its ports chosen by the system; the ports are read from stdout.
    gRPC only by default (HTTP and metrics off); with http=True the HTTP and metrics frontends too."""

    def __init__(self, repo, *args, http=False):
        ports = ["--http-port", "0", "--metrics-port", "0"] if http else ["--http-port", "-1", "--metrics-port", "-1"]
        self.proc = subprocess.Popen([LARSERVE, "serve", "--model-repository", str(repo), "--grpc-port", "0",
                                      *ports, "--threads", "1", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.urls = {}
        for _ in range(3 if http else 1):
            line = self.proc.stdout.readline()
            m = re.search(r"(gRPC|HTTP|metrics) listening on ([\d.]+):(\d+)", line)
            if not m:
                self.proc.kill()
                raise RuntimeError(f"server did not start: {line} {self.proc.stderr.read()}")
            self.urls[m.group(1)] = f"{m.group(2)}:{m.group(3)}"
        self.url = self.grpc = self.urls["gRPC"]
        self.http, self.metrics = self.urls.get("HTTP"), self.urls.get("metrics")

    def stop(self):
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return rc


def make_repo(root):
    """The test model, and a model whose file is corrupt (UNAVAILABLE with a reason, the others still served)."""
    (root / MODEL / "1").mkdir(parents=True)
    shutil.copy(MODEL_FILE, root / MODEL / "1" / "model.onnx")
    (root / MODEL / "config.pbtxt").write_text(CONFIG)
    (root / "broken" / "1").mkdir(parents=True)
    (root / "broken" / "1" / "model.onnx").write_bytes(b"not an onnx model" * 10)
    (root / "broken" / "config.pbtxt").write_text(CONFIG.replace('name: "emtrkmichel"', 'name: "broken"'))
    return root


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("repo"))


def patches(n, seed):
    return np.random.default_rng(seed).uniform(-5, 15, (n, 48, 48, 1)).astype(np.float32)


def local_scores(x, tmp_path):
    """Our engine in-process (`larserve infer`) on the same model and inputs."""
    np.save(tmp_path / "x.npy", x)
    r = subprocess.run([LARSERVE, "infer", MODEL_FILE, "--backend", "cpu",
                        "-i", f"{IN}={tmp_path / 'x.npy'}", "-o", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return (np.load(tmp_path / "em_trk_none_netout_Softmax.npy"), np.load(tmp_path / "michel_netout_Sigmoid.npy"))
