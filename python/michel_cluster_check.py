#!/usr/bin/env python3
"""Would a per-cluster Michel score reach 90 % purity where the per-hit one does not?

A check, not a product: on `larserve reco` results files, hits whose Michel score exceeds a seed
threshold are joined into clusters per event, APA and plane (truth-free: hits closer than
`radius` in wire pitches, with 6 ticks counted as one pitch), each hit takes its cluster's
charge-weighted mean score, and the Michel efficiency at 90 % purity is compared with the per-hit
score's (docs/physics/performance.md, run 7).

Usage: python/michel_cluster_check.py results.h5 [more.h5 ...]
"""
import os
import sys

import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import performance as P  # noqa: E402

def best_eff(score, truth, target=0.9):
    o = np.argsort(-score, kind="stable"); tp = np.cumsum(truth[o]); k = np.arange(1, len(o) + 1)
    pur = tp / k; eff = tp / truth.sum(); ok = pur >= target
    return (eff[ok].max() if ok.any() else 0.0), pur[min(np.searchsorted(eff, 0.9), len(pur) - 1)]

def components(pts, radius):
    """Connected components of points closer than `radius` (union-find over the close pairs)."""
    parent = np.arange(len(pts))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = np.argsort(pts[:, 0], kind="stable")
    p = pts[order]
    for a in range(len(p)):
        b = a + 1
        while b < len(p) and p[b, 0] - p[a, 0] <= radius:
            if np.hypot(*(p[b] - p[a])) <= radius:
                ra, rb = find(order[a]), find(order[b])
                if ra != rb:
                    parent[ra] = rb
            b += 1
    roots = np.array([find(i) for i in range(len(pts))])
    return np.unique(roots, return_inverse=True)[1]


def cluster_scores(h, seed_thr, radius, weight):
    s = h["scores"][:, 3].astype(np.float64)
    out = s.copy()
    keys = np.stack([h["event"], h["apa"], h["plane"]], 1)
    _, grp = np.unique(keys, axis=0, return_inverse=True)
    for g in np.unique(grp):
        idx = np.flatnonzero((grp == g) & (s > seed_thr))
        if len(idx) < 2:
            continue
        pts = np.stack([h["wire"][idx].astype(float), h["peak_tick"][idx] / 6.0], 1)
        lab = components(pts, radius)
        n = lab.max() + 1
        w = h["integral"][idx] if weight else np.ones(len(idx))
        out[idx] = (np.bincount(lab, w * s[idx], n) / np.bincount(lab, w, n))[lab]
    return out


for path in sys.argv[1:]:
    h, _ = P.read_results(path)
    valid = h["category"] != P.NO_TRUTH
    truth = h["category"] == P.MICHEL_CATEGORY
    print(path)
    for pname, pm in (("W", h["plane"] == 2), ("all", np.ones(len(truth), bool))):
        m = valid & pm
        e, p = best_eff(h["scores"][m, 3], truth[m])
        print(f"  {pname} per hit: eff at purity>=0.9 {e:.3f}, purity at eff 0.9 {p:.3f}")
    for seed_thr in (0.01, 0.03, 0.1):
        for radius in (1.5, 2.5):
            cs = cluster_scores(h, seed_thr, radius, True)
            res = []
            for pname, pm in (("W", h["plane"] == 2), ("all", np.ones(len(truth), bool))):
                m = valid & pm
                e, p = best_eff(cs[m], truth[m]); res.append(f"{pname} eff@pur0.9 {e:.3f} pur@eff0.9 {p:.3f}")
            print(f"  clusters seed>{seed_thr} r={radius}: " + "; ".join(res))
