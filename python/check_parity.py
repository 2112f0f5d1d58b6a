#!/usr/bin/env python3
"""PyTorch vs larserve on the same patches: the trained model's scores computed by PyTorch (in
float32 as trained, and in float64 as the reference) against `larserve infer` on the exported
ONNX file (our engine, FP32), for every patch of a `larserve patches --npy-dir` directory.

    python/check_parity.py --arch compact --checkpoint compact.pt --model compact.onnx \\
        --patches parity_npy/ --larserve build/cpu-release/src/apps/larserve [--json out.json]

Criterion (issue 4: "the same scores, FP32, 1e-5 relative"): |larserve - torch64| <= 1e-5 *
|torch64| + 1e-7 for every score (the 1e-7 floor covers probabilities that underflow towards
0). The float32 PyTorch run is reported beside it: it is itself ~1e-5 relative off float64 for
the 92,928-term dense layer of the production model. Exit status 1 if the criterion fails.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import patchdata  # noqa: E402
import train  # noqa: E402

RTOL, ATOL = 1e-5, 1e-7


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=sorted(train.ARCHS), required=True)
    ap.add_argument("--checkpoint", required=True, help="state_dict saved by train.py --checkpoint")
    ap.add_argument("--model", required=True, help="the exported ONNX file")
    ap.add_argument("--patches", required=True, help="patches (.npy directory, .npz or .h5)")
    ap.add_argument("--larserve", required=True)
    ap.add_argument("--limit", type=int, default=0, help="at most this many patches (0: all)")
    ap.add_argument("--json", help="write the summary here")
    args = ap.parse_args(argv)

    src = patchdata.open_patches(args.patches)
    n = len(src) if args.limit <= 0 else min(args.limit, len(src))
    x = np.array(src.arrays["patches"][:n], dtype=np.float32)  # a writable copy
    ckpt = torch.load(args.checkpoint, map_location="cpu")
    kw = dict(zip(("c1", "c2", "hidden"), ckpt.get("width") or []))  # train.py --width
    net = train.ARCHS[args.arch](target=ckpt.get("target", "3class"), **kw)  # train.py --target
    net.delta_rays = ckpt.get("delta_rays", "track")
    net.load_state_dict(ckpt["state_dict"])
    net.eval()
    ref64 = train.reference_scores(net, x)
    with torch.no_grad():
        got32 = [t.numpy() for t in train.Exported(net)(torch.from_numpy(x))]

    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "x.npy"), x)
        r = subprocess.run([args.larserve, "infer", args.model, "--backend", "cpu", "-i",
                            f"main_input={os.path.join(tmp, 'x.npy')}", "-o", tmp],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"larserve infer failed: {r.stderr.strip()}")
        ours = [np.load(os.path.join(tmp, name.replace("/", "_") + ".npy")) for name in train.OUTPUT_NAMES]

    summary = {"arch": args.arch, "model": args.model, "patches": n, "criterion":
               f"|larserve - torch float64| <= {RTOL} * |torch float64| + {ATOL}", "outputs": {}}
    ok = True
    for name, ref, a, t32 in zip(train.OUTPUT_NAMES, ref64, ours, got32):
        ref = ref.astype(np.float64)
        err = np.abs(a - ref)
        bad = int((err > RTOL * np.abs(ref) + ATOL).sum())
        rel = float((err / np.maximum(np.abs(ref), 1e-30)).max())
        rel32 = float((np.abs(t32 - ref) / np.maximum(np.abs(ref), 1e-30)).max())
        summary["outputs"][name] = {"max_abs_diff": float(err.max()), "max_rel_diff": rel,
                                    "violations": bad, "torch_float32_max_rel_diff": rel32,
                                    "larserve_vs_torch_float32_max_abs_diff": float(np.abs(a - t32).max())}
        ok &= bad == 0
        print(f"{args.arch} {name}: {n} patches, larserve vs torch float64 max abs {err.max():.2e}, "
              f"max rel {rel:.2e}, {bad} outside the criterion; torch float32 max rel {rel32:.2e}")
    summary["pass"] = bool(ok)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
