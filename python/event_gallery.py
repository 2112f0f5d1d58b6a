#!/usr/bin/env python3
"""Makes the event-display gallery of docs/simulation.md: one zoomed truth picture per category.

    python/event_gallery.py events.h5 OUTDIR [--larserve PATH]

For each category (track, shower, michel, delta) it picks the particle of that category with the
most charge on the collection plane (W) of APA 0, finds the window its truth pixels cover, and
calls `larserve display --truth` on that window; plus one full-plane picture.
"""
import argparse
import os
import subprocess

import h5py
import numpy as np

CATEGORIES = {"track": 1, "shower": 2, "michel": 3, "delta": 4}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("events")
    ap.add_argument("outdir")
    ap.add_argument("--larserve", default="build/cpu-release/src/apps/larserve")
    args = ap.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    best = {}
    with h5py.File(args.events, "r") as f:
        names = sorted(f["events"].keys())
        for i, name in enumerate(names):
            ev = f["events"][name]
            parts = ev["particles"][:]
            w = ev["apa0/W"]
            ids, ch, tk, q = w["truth_id"][:], w["truth_channel"][:], w["truth_tick"][:], w["truth_charge"][:]
            for cat, code in CATEGORIES.items():
                for pid in np.nonzero(parts["category"] == code)[0]:
                    sel = ids == pid
                    charge = q[sel].sum()
                    if sel.sum() == 0 or charge <= best.get(cat, (0,))[0]:
                        continue
                    # Michels and delta rays: prefer ones whose window is not too wide.
                    c0, c1, t0, t1 = ch[sel].min(), ch[sel].max(), tk[sel].min(), tk[sel].max()
                    if cat in ("michel", "delta") and (c1 - c0 > 80 or t1 - t0 > 600):
                        continue
                    best[cat] = (charge, i, int(c0), int(c1), int(t0), int(t1))
    for cat, (charge, i, c0, c1, t0, t1) in sorted(best.items()):
        pad_c = max(15, (c1 - c0) // 3)
        pad_t = max(60, (t1 - t0) // 3)
        lo_c, hi_c = max(0, c0 - pad_c), min(960, c1 + pad_c)
        lo_t, hi_t = max(0, t0 - pad_t), min(6000, t1 + pad_t)
        for mode in ("truth", "charge"):
            out = os.path.join(args.outdir, f"{cat}_{mode}.png")
            cmd = [args.larserve, "display", args.events, "--event", str(i), "--plane", "W",
                   "--channels", f"{lo_c}:{hi_c}", "--ticks", f"{lo_t}:{hi_t}", "-o", out]
            if mode == "truth":
                cmd.append("--truth")
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        print(f"{cat}: event {i}, channels {lo_c}-{hi_c}, ticks {lo_t}-{hi_t}, {charge:.3g} electrons")
    for mode in ("truth", "charge"):
        cmd = [args.larserve, "display", args.events, "--event", "0", "--plane", "W",
               "-o", os.path.join(args.outdir, f"event_{mode}.png")]
        if mode == "truth":
            cmd.append("--truth")
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
