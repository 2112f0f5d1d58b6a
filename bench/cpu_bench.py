#!/usr/bin/env python3
"""CPU inference benchmark: larserve (cpu and reference backends) against onnxruntime, PyTorch
eager, torch.compile (where it works) and OpenCV DNN, on the same model, machine and run.

    .venv/bin/python bench/cpu_bench.py [--batch 256] [--seconds 5] [--threads 1,N]
                                        [--larserve build/cpu-release/src/apps/larserve]
                                        [--json docs/perf/cpu.json]

Model: the production EmTrackMichelId architecture (FACTS.md section 2, 11.9 M parameters) as a
seeded PyTorch module, exported to ONNX (opset 17) by PyTorch: the same weights run in PyTorch
itself and, through the ONNX file, in every other engine. Throughput is inferences (patches)
per second at the given batch; every engine is timed the same way (warm-up, then as many
batches as fit in --seconds). Prints a table and writes JSON with the machine and commit.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def timed(run, seconds, warmup=2):
    for _ in range(warmup):
        run()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run()
        n += 1
    return n, time.perf_counter() - start


def bench_larserve(exe, model, backend, batch, threads, seconds, workdir):
    # Built as a plan for this batch and thread count, so that the tactics (kernel variants) are
    # timed at the shape that is measured, as trtexec builds an engine before timing it. One
    # execution context; `threads` intra-op threads.
    plan = os.path.join(workdir, f"{backend}_{batch}_{threads}.plan")
    b = subprocess.run([exe, "build", model, "-o", plan, "--backend", backend, "--batch", f"1:{batch}:{batch}",
                        "--threads", str(threads), "--timing-cache", os.path.join(workdir, "timing.cache"),
                        "--json"], capture_output=True, text=True)
    if b.returncode != 0:
        return None, b.stderr.strip().splitlines()[-1] if b.stderr else "build failed"
    chosen = [t["chosen"] for t in json.loads(b.stdout).get("tactic_choices", [])]
    r = subprocess.run([exe, "exec", plan, "--batch", str(batch), "--threads", "1",
                        "--intra-threads", str(threads), "--seconds", str(seconds), "--json"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip().splitlines()[-1] if r.stderr else "failed"
    j = json.loads(r.stdout)
    return j["throughput_inferences_per_s"], ("tactics " + ",".join(chosen)) if chosen else ""


def bench_onnxruntime(model, x, threads, seconds):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    n, t = timed(lambda: sess.run(None, {"main_input": x}), seconds)
    return n * x.shape[0] / t, ort.__version__


def make_module(seed=2026):
    """The production EmTrackMichelId architecture (FACTS.md section 2) with seeded weights.

    Input NHWC [N, 48, 48, 1] as in the TensorFlow original; exported to ONNX by PyTorch, so the
    ONNX file has the layout transposes a real export has."""
    import torch

    class EmTrkMichel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 48, 5)
            self.d1 = torch.nn.Linear(44 * 44 * 48, 128)
            self.d2 = torch.nn.Linear(128, 32)
            self.em = torch.nn.Linear(32, 3)
            self.mi = torch.nn.Linear(32, 1)
            self.drop = torch.nn.Dropout(0.2)

        def forward(self, x):
            y = torch.relu(self.conv(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1).flatten(1)
            y = self.drop(torch.relu(self.d1(self.drop(y))))
            y = self.drop(torch.relu(self.d2(y)))
            return torch.softmax(self.em(y), -1), torch.sigmoid(self.mi(y))

    torch.manual_seed(seed)
    return EmTrkMichel().eval()


def export_onnx(module, path):
    import torch
    x = torch.zeros(2, 48, 48, 1)
    kwargs = {"dynamo": False} if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 5) else {}
    torch.onnx.export(module, x, path, opset_version=17, input_names=["main_input"],
                      output_names=["em_trk_none_netout/Softmax", "michel_netout/Sigmoid"],
                      dynamic_axes={"main_input": {0: "N"}, "em_trk_none_netout/Softmax": {0: "N"},
                                    "michel_netout/Sigmoid": {0: "N"}}, **kwargs)


def bench_torch(module, x, threads, seconds, compile_):
    import torch
    torch.set_num_threads(threads)
    m = module
    if compile_:
        if not hasattr(torch, "compile"):
            return None, f"torch {torch.__version__} has no torch.compile"
        m = torch.compile(m)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        n, t = timed(lambda: m(xt), seconds)
    return n * x.shape[0] / t, torch.__version__


def bench_opencv(model, x, threads, seconds):
    import cv2
    cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromONNX(model)
    net.setInput(x)
    out_names = net.getUnconnectedOutLayersNames()
    n, t = timed(lambda: net.forward(out_names), seconds)
    return n * x.shape[0] / t, cv2.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", default=f"1,{os.cpu_count()}")
    ap.add_argument("--larserve", default="build/cpu-release/src/apps/larserve")
    ap.add_argument("--json", default="docs/perf/cpu.json")
    ap.add_argument("--skip", default="", help="comma-separated engines to skip")
    ap.add_argument("--commit", default="", help="commit to record (default: git rev-parse HEAD)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="measure every point this many times, engines alternating (table: mean)")
    ap.add_argument("--pin", type=int, default=-1,
                    help="run the one-thread points pinned to this core (default: not pinned)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    model_path = os.path.join(tmp, "emtrkmichel_random.onnx")
    module = make_module()
    export_onnx(module, model_path)
    x = (np.random.default_rng(1).uniform(-10, 30, size=(args.batch, 48, 48, 1)) / 30).astype(np.float32)
    # The ONNX file is built with larserve once here, so that build time is not in the timing.
    skip = set(args.skip.split(",")) if args.skip else set()
    commit = args.commit or subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                           text=True).stdout.strip()
    rows = []
    print(f"EmTrackMichelId (11.9 M parameters), batch {args.batch}, {args.seconds:.0f} s per point; "
          f"CPU: {cpu_model()} ({os.cpu_count()} cores); commit {commit}")
    print(f"{'engine':<28} {'threads':>7} {'inferences/s':>14}  note")
    all_cores = os.sched_getaffinity(0)
    for threads, repeat in [(int(t), r) for t in args.threads.split(",") for r in range(args.repeats)]:
        # One-thread points on one core (children inherit the affinity), the others on all.
        os.sched_setaffinity(0, {args.pin} if threads == 1 and args.pin >= 0 else all_cores)
        engines = [
            ("larserve cpu (oneDNN)", lambda: bench_larserve(args.larserve, model_path, "cpu", args.batch, threads, args.seconds, tmp)),
            ("onnxruntime", lambda: bench_onnxruntime(model_path, x, threads, args.seconds)),
            ("pytorch eager", lambda: bench_torch(module, x, threads, args.seconds, False)),
            ("torch.compile", lambda: bench_torch(make_module(), x, threads, args.seconds, True)),
            ("opencv dnn", lambda: bench_opencv(model_path, x, threads, args.seconds)),
        ]
        for name, fn in engines:
            if name.split()[0] in skip:
                continue
            try:
                value, note = fn()
            except Exception as e:  # a peer that cannot run here is reported, not fatal
                value, note = None, f"{type(e).__name__}: {str(e)[:80]}"
            rows.append({"engine": name, "threads": threads, "repeat": repeat, "inferences_per_s": value,
                         "pinned": threads == 1 and args.pin >= 0, "note": note})
            shown = f"{value:14.1f}" if value else f"{'-':>14}"
            print(f"{name:<28} {threads:>7} {shown}  {note}", flush=True)
    os.sched_setaffinity(0, all_cores)
    if args.repeats > 1:
        print(f"\nmean over {args.repeats} repeats (min - max):")
        for threads in [int(t) for t in args.threads.split(",")]:
            for name in dict.fromkeys(r["engine"] for r in rows):
                v = [r["inferences_per_s"] for r in rows
                     if r["engine"] == name and r["threads"] == threads and r["inferences_per_s"]]
                if v:
                    print(f"{name:<28} {threads:>7} {sum(v) / len(v):14.1f}  ({min(v):.1f} - {max(v):.1f})")
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"benchmark": "cpu", "model": "EmTrackMichelId (random weights)", "batch": args.batch,
                   "seconds_per_point": args.seconds, "cpu": cpu_model(), "cores": os.cpu_count(),
                   "commit": commit, "command": " ".join(sys.argv), "repeats": args.repeats,
                   "pinned_core": args.pin if args.pin >= 0 else None, "results": rows}, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
