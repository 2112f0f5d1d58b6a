#!/usr/bin/env python3
"""How much does the hit-truth definition decide the em/track numbers?

A check, not a product. FACTS.md section 3 defines the truth label of a (wire, tick): the particle
that deposited the most charge there. `larserve reco` labels a hit by the particle that brought the
most charge over the hit's whole tick window (truth_match.h). For hits shared by a muon and its
delta ray the two can differ. This script relabels the hits of a results file from the events file
it was made from, by the owner of the charge at the centre of the hit's patch:

- `peak`: the truth pixel at (wire, peak tick);
- `bin`: the most charge per particle over the 6 ticks of the downsampled bin holding the peak
  (the patch's centre pixel).

It then prints the model's efficiency and purity for track and em under the window label (as
`performance.py`), `peak` and `bin`, per plane.

Usage: python/peak_label_check.py results.h5 events.h5 [--delta-rays em|track]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import performance as P  # noqa: E402

DRIFT_WINDOW = 6  # ticks per downsampled bin (PointIdAlg's DriftWindow)


def relabel(hits, events_path):
    """Per hit: (peak owner, bin owner) particle categories, NO_TRUTH where there is no truth."""
    import h5py
    n = len(hits["category"])
    peak_cat = np.full(n, P.NO_TRUTH, np.uint8)
    bin_cat = np.full(n, P.NO_TRUTH, np.uint8)
    with h5py.File(events_path, "r") as f:
        names = sorted(f["events"].keys())
        for e in np.unique(hits["event"]):
            ev = f["events"][names[int(e)]]
            cats = ev["particles"]["category"][:]
            for a in np.unique(hits["apa"][hits["event"] == e]):
                for pi, pname in enumerate(P.PLANES):
                    sel = np.nonzero((hits["event"] == e) & (hits["apa"] == a) & (hits["plane"] == pi))[0]
                    if not len(sel):
                        continue
                    g = ev[f"apa{int(a)}"][pname]
                    ch = g["truth_channel"][:].astype(np.int64)
                    tk = g["truth_tick"][:].astype(np.int64)
                    tid = g["truth_id"][:]
                    q = g["truth_charge"][:]
                    key = ch * 1_000_000 + tk  # sorted by (channel, tick), as the file requires
                    wires = hits["wire"][sel].astype(np.int64)
                    peaks = np.rint(hits["peak_tick"][sel]).astype(np.int64)
                    k = np.searchsorted(key, wires * 1_000_000 + peaks)
                    ok = (k < len(key)) & (key[np.minimum(k, len(key) - 1)] == wires * 1_000_000 + peaks)
                    own = tid[np.minimum(k, len(key) - 1)]
                    ok &= own >= 0
                    peak_cat[sel[ok]] = cats[own[ok]]
                    b0 = (peaks // DRIFT_WINDOW) * DRIFT_WINDOW
                    lo = np.searchsorted(key, wires * 1_000_000 + b0)
                    hi = np.searchsorted(key, wires * 1_000_000 + b0 + DRIFT_WINDOW)
                    for j, (s, t) in enumerate(zip(lo, hi)):
                        if t <= s:
                            continue
                        ids, inv = np.unique(tid[s:t], return_inverse=True)
                        sums = np.bincount(inv, weights=q[s:t])
                        best = ids[np.argmax(sums)]
                        if best >= 0:
                            bin_cat[sel[j]] = cats[best]
    return peak_cat, bin_cat


def scores(hits, category, delta_rays, plane):
    h = dict(hits, category=category)
    m = (h["category"] != P.NO_TRUTH) & ((hits["plane"] == plane) if plane is not None else True)
    t = P.true_classes(h, delta_rays)[m]
    p = np.argmax(hits["scores"][:, :3], axis=1)[m]
    out = {}
    for c, name in enumerate(P.CLASSES[:2]):
        both, nt, npred = int(((t == c) & (p == c)).sum()), int((t == c).sum()), int((p == c).sum())
        out[name] = (both / nt if nt else float("nan"), both / npred if npred else float("nan"))
    return out, int(m.sum())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results")
    ap.add_argument("events")
    ap.add_argument("--delta-rays", default="em", choices=["em", "track"])
    a = ap.parse_args(argv)
    hits, _ = P.read_results(a.results)
    peak_cat, bin_cat = relabel(hits, a.events)
    valid = hits["category"] != P.NO_TRUTH
    print(f"{a.results}: {len(valid)} hits; delta rays -> {a.delta_rays}")
    for name, cat in (("peak", peak_cat), ("bin", bin_cat)):
        both = valid & (cat != P.NO_TRUTH)
        print(f"  {name} label exists for {int(both.sum())} of {int(valid.sum())} hits with truth; "
              f"same category as the window label on {np.mean(cat[both] == hits['category'][both]):.4f}")
    print(f"{'plane':6} {'label':7} {'hits':>7} {'track eff':>9} {'track pur':>9} {'em eff':>7} {'em pur':>7}")
    for pi, pname in list(enumerate(P.PLANES)) + [(None, "all")]:
        for name, cat in (("window", hits["category"]), ("peak", peak_cat), ("bin", bin_cat)):
            r, n = scores(hits, cat, a.delta_rays, pi)
            print(f"{pname:6} {name:7} {n:7d} {r['track'][0]:9.4f} {r['track'][1]:9.4f} {r['em'][0]:7.4f} "
                  f"{r['em'][1]:7.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
