#!/usr/bin/env python3
"""Hit-classification performance from reconstruction results files (`larserve-reco-results`,
schema 1): confusion matrices, efficiency and purity per category and plane, their dependence on
the hit charge, and the Michel-score ROC. One model, or several side by side.

    python/performance.py results.h5 -o perf/
    python/performance.py prod.h5 --compare compact.h5 --labels production,compact -o perf/

Writes into the output directory: performance.md (tables), performance.json (every number),
confusion_<label>.png, eff_purity_vs_charge.png, michel_roc.png.

Definitions (per plane U, V, W and all planes together; hits whose events had no truth,
category 255, are left out and counted):
  true class   from the simulation category: track -> track, shower and michel -> em, none ->
               none, delta -> track (the original 3-class scheme, FACTS.md section 3), em
               (--delta-rays em, for models trained on `larserve patches --delta-rays em`) or,
               with --delta-rays size:E (E in MeV), track when the delta ray's electron had
               less than E MeV of kinetic energy at creation and em otherwise (needs
               /hits/truth_kinetic_mev, which `larserve reco` writes)
  predicted    argmax of the first three scores (track, em, none)
  efficiency   N(true c and predicted c) / N(true c)
  purity       N(true c and predicted c) / N(predicted c)
  Michel       true = category michel, predicted = michel score > threshold (--michel-threshold,
               default 0.5); also the threshold that maximises the efficiency with purity >=
               --purity-target (default 0.9), reported as T such that "score > T" selects it.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import patchdata  # noqa: E402  (the delta-ray schemes, shared with train.py)

RESULTS_FORMAT = "larserve-reco-results"
RESULTS_SCHEMA_VERSION = 1
PLANES = ("U", "V", "W")
CLASSES = ("track", "em", "none")
CATEGORY_NAMES = ("none", "track", "shower", "michel", "delta")
NO_TRUTH = 255
# Simulation category -> true 3-class label (0 track, 1 em, 2 none).
TRUE3 = np.full(256, -1, np.int64)
TRUE3[[0, 1, 2, 3, 4]] = [2, 0, 1, 1, 0]
TRUE3_DELTA_EM = TRUE3.copy()
TRUE3_DELTA_EM[4] = 1
DELTA_CATEGORY = 4
MICHEL_CATEGORY = 3
KINETIC = "truth_kinetic_mev"  # /hits dataset: kinetic energy at creation of the hit's particle
# Rows of the efficiency/purity tables: the brief's track, shower (em), michel, plus none.
ROWS = ("track", "em", "none", "michel")


def _str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def read_results(path):
    import h5py
    with h5py.File(path, "r") as f:
        fmt = _str(f.attrs.get("format", ""))
        if fmt != RESULTS_FORMAT:
            raise SystemExit(f"{path}: format {fmt!r}, not {RESULTS_FORMAT!r} (made by larserve's "
                             "reconstruction)")
        ver = int(f.attrs.get("schema_version", -1))
        if ver != RESULTS_SCHEMA_VERSION:
            raise SystemExit(f"{path}: schema_version {ver}, this script reads {RESULTS_SCHEMA_VERSION}")
        names = _str(f.attrs.get("score_names", "track,em,none,michel"))
        if names != "track,em,none,michel":
            raise SystemExit(f"{path}: score columns are {names!r}, this script reads track,em,none,michel")
        if int(f.attrs.get("complete", 1)) != 1:
            print(f"warning: {path} is incomplete (its writer was interrupted)", file=sys.stderr)
        g = f["hits"]
        hits = {k: g[k][:] for k in ("event", "apa", "plane", "wire", "peak_tick", "integral", "category", "scores")}
        # Share of the hit's truth charge from its dominant particle (1 where the file lacks it).
        hits["truth_fraction"] = (g["truth_fraction"][:] if "truth_fraction" in g
                                  else np.ones(len(hits["category"]), np.float32))
        if KINETIC in g:  # absent in files from before it existed; only --delta-rays size needs it
            hits[KINETIC] = g[KINETIC][:]
        attrs = {k: _str(f.attrs[k]) for k in ("larserve_version", "source", "model") if k in f.attrs}
    n = len(hits["category"])
    if hits["scores"].shape != (n, 4):
        raise SystemExit(f"{path}: /hits/scores has shape {hits['scores'].shape}, expected ({n}, 4)")
    for k, v in hits.items():
        if len(v) != n:
            raise SystemExit(f"{path}: /hits/{k} has {len(v)} rows, category has {n}")
    bad = ~np.isin(hits["category"], [0, 1, 2, 3, 4, NO_TRUTH])
    if bad.any():
        raise SystemExit(f"{path}: {int(bad.sum())} hits with an unknown category")
    return hits, attrs


def delta_rays_arg(value):
    """argparse type of --delta-rays: "track", "em" or "size:E" (E > 0, MeV), canonical."""
    try:
        return patchdata.delta_rays_name(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


def describe_delta_rays(delta_rays):
    """The true class of delta-ray hits under a scheme, in words."""
    scheme, mev = patchdata.parse_delta_rays(delta_rays)
    if scheme != "size":
        return scheme
    e = np.format_float_positional(mev, trim="-")
    return f"track below {e} MeV of kinetic energy at creation, em at or above ({delta_rays})"


def true_classes(hits, delta_rays="track"):
    """The true 3-class label of every hit (-1 without truth) under a delta-ray scheme."""
    cat = hits["category"]
    scheme, mev = patchdata.parse_delta_rays(delta_rays)
    true3 = (TRUE3_DELTA_EM if scheme == "em" else TRUE3)[cat]
    if scheme == "size":
        if KINETIC not in hits:
            raise SystemExit(f"--delta-rays {delta_rays} needs /hits/{KINETIC}, which the results file lacks")
        # float32 on both sides, as larserve compares; NaN (no particle) is not below: em.
        small = np.asarray(hits[KINETIC], np.float32) < mev
        delta = cat == DELTA_CATEGORY
        true3[delta] = np.where(small[delta], 0, 1)
    return true3


def ratio(a, b):
    return float(a) / float(b) if b else None


def roc(score, truth):
    """Cuts "score > T" at every distinct score. Returns arrays over the cuts (loosening):
    thresholds T, true positives, false positives; plus the totals P, N."""
    score = np.asarray(score, np.float32)
    truth = np.asarray(truth, bool)
    order = np.argsort(-score, kind="mergesort")
    s, t = score[order], truth[order]
    tp, fp = np.cumsum(t), np.cumsum(~t)
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1] if len(s) else np.zeros(0, np.int64)
    # score >= s_k  <=>  score > nextafter(s_k, -inf) for float32 scores.
    thr = np.nextafter(s[last], np.float32(-np.inf))
    return thr, tp[last], fp[last], int(truth.sum()), int((~truth).sum())


def michel_summary(score, truth, threshold, purity_target):
    thr, tp, fp, P, N = roc(score, truth)
    sel = score > np.float32(threshold)
    n_both, n_pred = int((sel & truth).sum()), int(sel.sum())
    out = {"n_true": P, "n_false": N, "threshold": threshold,
           "efficiency": ratio(n_both, P), "purity": ratio(n_both, n_pred), "auc": None,
           "target_purity": purity_target, "threshold_at_target": None,
           "efficiency_at_target": None, "purity_at_target": None}
    if P and N:
        fpr, tpr = np.r_[0.0, fp / N], np.r_[0.0, tp / P]
        out["auc"] = float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))
    if P:
        pur = tp / np.maximum(tp + fp, 1)
        ok = np.flatnonzero(pur >= purity_target)
        if len(ok):
            k = ok[np.argmax(tp[ok])]  # first (tightest) cut reaching the largest efficiency
            out.update(threshold_at_target=float(thr[k]), efficiency_at_target=float(tp[k] / P),
                       purity_at_target=float(pur[k]))
    curve = {"threshold": thr, "tpr": tp / P if P else tp * 0.0, "fpr": fp / N if N else fp * 0.0,
             "purity": tp / np.maximum(tp + fp, 1)}
    return out, curve


def michel_at_efficiency(score, cat, efficiency=0.5):
    """What the Michel score selects at the tightest cut (highest threshold) that reaches
    `efficiency` of the true Michel hits: its threshold, purity, and the selected hits by true
    category (where the false positives come from)."""
    truth = cat == MICHEL_CATEGORY
    n = int(truth.sum())
    if n == 0:
        return None
    order = np.argsort(-score, kind="stable")
    k = int(np.searchsorted(np.cumsum(truth[order]), int(np.ceil(efficiency * n))))
    thr = score[order[k]]
    sel = score >= thr
    return {"efficiency_target": efficiency, "threshold": float(thr),
            "efficiency": ratio(int((sel & truth).sum()), n), "purity": ratio(int((sel & truth).sum()), int(sel.sum())),
            "selected_by_category": {name: int((sel & (cat == c)).sum()) for c, name in enumerate(CATEGORY_NAMES)}}


def charge_edges(integrals, nbins):
    v = np.concatenate([x[x > 0] for x in integrals]) if integrals else np.zeros(0)
    if len(v) < 2:
        return np.array([1.0, 10.0])
    lo, hi = np.percentile(v, [0.5, 99.5])
    if hi <= lo:
        hi = lo * 10
    return np.geomspace(lo, hi, nbins + 1)


def binned(integral, true_mask, pred_mask, edges):
    """Efficiency and purity in bins of hit integral (under/overflow in the end bins)."""
    b = np.clip(np.searchsorted(edges, integral, side="right") - 1, 0, len(edges) - 2)
    nb = len(edges) - 1
    n_true = np.bincount(b[true_mask], minlength=nb)
    n_pred = np.bincount(b[pred_mask], minlength=nb)
    n_both = np.bincount(b[true_mask & pred_mask], minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        eff, pur = n_both / n_true, n_both / n_pred
    return {"n_true": n_true.tolist(), "n_pred": n_pred.tolist(), "n_both": n_both.tolist(),
            "efficiency": [None if np.isnan(x) else float(x) for x in eff],
            "purity": [None if np.isnan(x) else float(x) for x in pur]}


def split_by_truth_fraction(t, p, tf, cut):
    """Efficiency and purity of track and em on hits whose dominant particle brought at least `cut`
    of the truth charge ("clear") and on the others ("mixed"): how much of the error sits on hits
    shared between particles, whose label is the larger share."""
    out = {}
    for name, sel in (("clear", tf >= cut), ("mixed", tf < cut)):
        cats = {"n_hits": int(sel.sum())}
        for c, cname in enumerate(CLASSES[:2]):
            n_true, n_pred = int((sel & (t == c)).sum()), int((sel & (p == c)).sum())
            n_both = int((sel & (t == c) & (p == c)).sum())
            cats[cname] = {"n_true": n_true, "n_pred": n_pred, "n_both": n_both,
                           "efficiency": ratio(n_both, n_true), "purity": ratio(n_both, n_pred)}
        out[name] = cats
    return out


SHARE_BINS = ((0.0, 0.5, "below 0.5"), (0.5, 0.6, "0.5-0.6"), (0.6, 0.7, "0.6-0.7"),
              (0.7, 0.8, "0.7-0.8"), (0.8, 0.9, "0.8-0.9"), (0.9, np.inf, "0.9 and above"))


def by_share(t, p, tf):
    """Per bin of the dominant particle's share of the hit's truth charge: hits, accuracy, track
    and em efficiency, and the bin's part of all errors (where the errors sit)."""
    errors = int((t != p).sum())
    out = []
    for lo, hi, name in SHARE_BINS:
        s = (tf >= lo) & (tf < hi) if lo > 0 else tf < hi
        n = int(s.sum())
        e = int((s & (t != p)).sum())
        out.append({"bin": name, "n_hits": n, "accuracy": ratio(n - e, n),
                    "track_efficiency": ratio(int((s & (t == 0) & (p == 0)).sum()), int((s & (t == 0)).sum())),
                    "em_efficiency": ratio(int((s & (t == 1) & (p == 1)).sum()), int((s & (t == 1)).sum())),
                    "n_errors": e, "error_share": ratio(e, errors)})
    return out


def analyse(hits, threshold, purity_target, edges, delta_rays="track", clear_fraction=0.9):
    cat = hits["category"]
    valid = cat != NO_TRUTH
    true3 = true_classes(hits, delta_rays)
    pred3 = np.argmax(hits["scores"][:, :3], axis=1)
    mscore = hits["scores"][:, 3].astype(np.float32)
    res = {"n_hits": int(len(cat)), "n_no_truth": int((~valid).sum()), "planes": {}}
    curves = {}
    for pname, pmask in [(p, hits["plane"] == i) for i, p in enumerate(PLANES)] + [("all", np.ones(len(cat), bool))]:
        m = pmask & valid
        t, p = true3[m], pred3[m]
        conf = np.bincount(t * 3 + p, minlength=9).reshape(3, 3) if m.any() else np.zeros((3, 3), np.int64)
        cats = {}
        for c, name in enumerate(CLASSES):
            n_both = int(conf[c, c])
            n_true, n_pred = int(conf[c].sum()), int(conf[:, c].sum())
            cats[name] = {"n_true": n_true, "n_pred": n_pred, "n_both": n_both,
                          "efficiency": ratio(n_both, n_true), "purity": ratio(n_both, n_pred)}
        mtrue = cat[m] == MICHEL_CATEGORY
        msum, curve = michel_summary(mscore[m], mtrue, threshold, purity_target)
        mpred = mscore[m] > np.float32(threshold)
        cats["michel"] = {"n_true": int(mtrue.sum()), "n_pred": int(mpred.sum()),
                          "n_both": int((mtrue & mpred).sum()),
                          "efficiency": msum["efficiency"], "purity": msum["purity"]}
        q = hits["integral"][m]
        vs = {name: binned(q, t == c, p == c, edges) for c, name in enumerate(CLASSES)}
        vs["michel"] = binned(q, mtrue, mpred, edges)
        res["planes"][pname] = {"n_hits": int(pmask.sum()), "n_with_truth": int(m.sum()),
                                "confusion": conf.tolist(), "categories": cats, "michel_score": msum,
                                "michel_at_half_efficiency": michel_at_efficiency(mscore[m], cat[m]),
                                "vs_charge": vs,
                                "by_truth_fraction": split_by_truth_fraction(
                                    t, p, hits["truth_fraction"][m], clear_fraction),
                                "by_share": by_share(t, p, hits["truth_fraction"][m])}
        curves[pname] = curve
    return res, curves


def agreement(a, b):
    keys = ("event", "apa", "plane", "wire", "peak_tick")
    if len(a["category"]) != len(b["category"]) or not all(np.array_equal(a[k], b[k]) for k in keys):
        return None
    pa, pb = np.argmax(a["scores"][:, :3], 1), np.argmax(b["scores"][:, :3], 1)
    out = {p: ratio(((pa == pb) & (a["plane"] == i)).sum(), (a["plane"] == i).sum()) for i, p in enumerate(PLANES)}
    out["all"] = ratio((pa == pb).sum(), len(pa))
    return out


# ----------------------------------------------------------------------------------- output

def fmt(x, digits=4):
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(report):
    L = ["# Hit classification performance", ""]
    L.append(f"Michel threshold {report['michel_threshold']}; purity target {report['purity_target']}. "
             f"True class: track -> track, delta -> {describe_delta_rays(report.get('delta_rays', 'track'))}, "
             "shower+michel -> em, "
             "none -> none; predicted: argmax "
             "of (track, em, none). Hits without truth (category 255) are left out.")
    L.append("")
    L += ["| model | file | model attribute | hits | without truth |", "| --- | --- | --- | ---: | ---: |"]
    for lab, m in report["models"].items():
        L.append(f"| {lab} | {m['file']} | {m['attrs'].get('model', '-')} | {m['n_hits']} | {m['n_no_truth']} |")
    L += ["", "## Efficiency and purity", "",
          "| model | plane | category | true | predicted | correct | efficiency | purity |",
          "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for plane in PLANES + ("all",):
        for cat in ROWS:
            for lab, m in report["models"].items():
                c = m["planes"][plane]["categories"][cat]
                L.append(f"| {lab} | {plane} | {cat} | {c['n_true']} | {c['n_pred']} | {c['n_both']} | "
                         f"{fmt(c['efficiency'])} | {fmt(c['purity'])} |")
    L += ["", "## Michel score", "",
          f"| model | plane | AUC | efficiency at {report['michel_threshold']} "
          f"| purity at {report['michel_threshold']} "
          f"| threshold for purity >= {report['purity_target']} | efficiency there | purity there |",
          "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for plane in PLANES + ("all",):
        for lab, m in report["models"].items():
            s = m["planes"][plane]["michel_score"]
            L.append(f"| {lab} | {plane} | {fmt(s['auc'])} | {fmt(s['efficiency'])} | {fmt(s['purity'])} | "
                     f"{fmt(s['threshold_at_target'], 6)} | {fmt(s['efficiency_at_target'])} | "
                     f"{fmt(s['purity_at_target'])} |")
    L += ["", "Michel score at the tightest cut that selects half of the true Michel hits: what else it selects "
          "(true categories of the selected hits).", "",
          "| model | plane | threshold | purity | " + " | ".join(CATEGORY_NAMES) + " |",
          "| --- | --- | ---: | ---: | " + " | ".join("---:" for _ in CATEGORY_NAMES) + " |"]
    for plane in PLANES + ("all",):
        for lab, m in report["models"].items():
            h = m["planes"][plane].get("michel_at_half_efficiency")
            if h:
                L.append(f"| {lab} | {plane} | {fmt(h['threshold'], 6)} | {fmt(h['purity'])} | "
                         + " | ".join(str(h["selected_by_category"][c]) for c in CATEGORY_NAMES) + " |")
    L += ["", "## Confusion matrices (rows: true, columns: predicted)", ""]
    for lab, m in report["models"].items():
        for plane in PLANES + ("all",):
            conf = m["planes"][plane]["confusion"]
            L += [f"### {lab}, plane {plane}", "", "| true \\ predicted | track | em | none |",
                  "| --- | ---: | ---: | ---: |"]
            for c, name in enumerate(CLASSES):
                L.append(f"| {name} | " + " | ".join(str(v) for v in conf[c]) + " |")
            L.append("")
    cut = report.get("clear_fraction", 0.9)
    L += ["## Clear and mixed hits", "",
          f"Clear: the dominant particle brought at least {cut} of the hit's truth charge; mixed: less "
          "(the hit's label is the larger share of two or more particles).", "",
          "| model | plane | hits | track eff | track pur | em eff | em pur |",
          "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for plane in PLANES + ("all",):
        for lab, m in report["models"].items():
            for kind in ("clear", "mixed"):
                b = m["planes"][plane]["by_truth_fraction"][kind]
                L.append(f"| {lab} | {plane} {kind} | {b['n_hits']} | {fmt(b['track']['efficiency'])} | "
                         f"{fmt(b['track']['purity'])} | {fmt(b['em']['efficiency'])} | {fmt(b['em']['purity'])} |")
    L.append("")
    L += ["## Errors by the dominant particle's share of the hit's charge", "",
          "| model | plane | share | hits | accuracy | track eff | em eff | part of the plane's errors |",
          "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for plane in PLANES + ("all",):
        for lab, m in report["models"].items():
            for b in m["planes"][plane]["by_share"]:
                L.append(f"| {lab} | {plane} | {b['bin']} | {b['n_hits']} | {fmt(b['accuracy'], 3)} | "
                         f"{fmt(b['track_efficiency'], 3)} | {fmt(b['em_efficiency'], 3)} | "
                         f"{fmt(b['error_share'], 3)} |")
    L.append("")
    if report.get("agreement"):
        L += ["## Agreement of the predicted classes (same hits)", "", "| models | U | V | W | all |",
              "| --- | ---: | ---: | ---: | ---: |"]
        for pair, a in report["agreement"].items():
            L.append(f"| {pair} | " + " | ".join(fmt(a[p]) for p in PLANES + ("all",)) + " |")
        L.append("")
    return "\n".join(L) + "\n"


def plot_confusion(path, label, mres):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.2))
    for ax, plane in zip(axes, PLANES + ("all",)):
        conf = np.array(mres["planes"][plane]["confusion"], np.float64)
        rows = conf.sum(axis=1, keepdims=True)
        frac = np.divide(conf, rows, out=np.zeros_like(conf), where=rows > 0)
        ax.imshow(frac, vmin=0, vmax=1, cmap="Blues")
        for i in range(3):
            for j in range(3):
                ax.text(j, i, f"{frac[i, j]:.3f}\n({int(conf[i, j])})", ha="center", va="center",
                        color="white" if frac[i, j] > 0.6 else "black", fontsize=9)
        ax.set_xticks(range(3), CLASSES)
        ax.set_yticks(range(3), CLASSES)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{label}: plane {plane}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_vs_charge(path, report, edges):
    import matplotlib.pyplot as plt
    centres = np.sqrt(edges[:-1] * edges[1:])
    cats = ("track", "em", "michel")
    fig, axes = plt.subplots(len(cats), 4, figsize=(18, 11), sharex=True, sharey=True, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for r, cat in enumerate(cats):
        for c, plane in enumerate(PLANES + ("all",)):
            ax = axes[r, c]
            for k, (lab, m) in enumerate(report["models"].items()):
                v = m["planes"][plane]["vs_charge"][cat]
                for key, style, n_key in (("efficiency", "-o", "n_true"), ("purity", "--s", "n_pred")):
                    y = np.array([np.nan if x is None else x for x in v[key]])
                    n = np.array(v[n_key], np.float64)
                    ok = np.isfinite(y)
                    err = np.sqrt(np.clip(y[ok] * (1 - y[ok]), 0, None) / np.maximum(n[ok], 1))
                    ax.errorbar(centres[ok], y[ok], yerr=err, fmt=style, ms=3, color=colours[k % len(colours)],
                                label=f"{lab} {key}")
            ax.set_xscale("log")
            ax.set_ylim(0, 1.05)
            ax.grid(alpha=0.3)
            ax.set_title(f"{cat}, plane {plane}")
            if r == len(cats) - 1:
                ax.set_xlabel("hit integral [ADC x tick]")
            if c == 0:
                ax.set_ylabel("efficiency (solid), purity (dashed)")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_roc(path, report, curves, purity_target):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 4, figsize=(18, 8.5), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, plane in enumerate(PLANES + ("all",)):
        ax_roc, ax_pe = axes[0, c], axes[1, c]
        for k, (lab, m) in enumerate(report["models"].items()):
            s = m["planes"][plane]["michel_score"]
            cv = curves[lab][plane]
            col = colours[k % len(colours)]
            if s["auc"] is not None:
                ax_roc.plot(np.r_[0, cv["fpr"]], np.r_[0, cv["tpr"]], color=col, label=f"{lab} AUC {s['auc']:.4f}")
            if s["n_true"]:
                ax_pe.plot(cv["tpr"], cv["purity"], color=col, label=lab)
                if s["threshold_at_target"] is not None:
                    ax_pe.plot([s["efficiency_at_target"]], [s["purity_at_target"]], "o", color=col,
                               label=f"{lab}: eff {s['efficiency_at_target']:.3f} at score > "
                                     f"{s['threshold_at_target']:.4g}")
        ax_roc.set_xscale("log")
        ax_roc.set_xlim(1e-5, 1)
        ax_roc.set_ylim(0, 1.02)
        ax_roc.set_xlabel("false positive rate (non-Michel hits selected)")
        ax_roc.set_ylabel("Michel efficiency")
        ax_roc.set_title(f"Michel ROC, plane {plane}")
        ax_roc.grid(alpha=0.3)
        if ax_roc.get_legend_handles_labels()[0]:
            ax_roc.legend(fontsize=8, loc="lower right")
        ax_pe.axhline(purity_target, color="grey", ls=":", lw=1)
        ax_pe.set_xlim(0, 1.02)
        ax_pe.set_ylim(0, 1.02)
        ax_pe.set_xlabel("Michel efficiency")
        ax_pe.set_ylabel("Michel purity")
        ax_pe.set_title(f"purity vs efficiency, plane {plane}")
        ax_pe.grid(alpha=0.3)
        if ax_pe.get_legend_handles_labels()[0]:
            ax_pe.legend(fontsize=7, loc="lower left")
        else:
            ax_pe.text(0.5, 0.5, "no Michel hits", ha="center", transform=ax_pe.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="results.h5 (larserve-reco-results)")
    ap.add_argument("--compare", nargs="*", default=[], help="more results files, compared with the first")
    ap.add_argument("--labels", help="comma-separated names of the models, in file order (default: file names)")
    ap.add_argument("-o", "--output-dir", default="performance", help="output directory (default ./performance)")
    ap.add_argument("--michel-threshold", type=float, default=0.5)
    ap.add_argument("--delta-rays", type=delta_rays_arg, default="track", metavar="track|em|size:E",
                    help="true class of delta-ray hits: track (original scheme, default), em, or size:E "
                         "(E in MeV, e.g. size:5: track when the delta ray's electron had less than E MeV "
                         "of kinetic energy at creation, else em; needs /hits/truth_kinetic_mev)")
    ap.add_argument("--purity-target", type=float, default=0.9)
    ap.add_argument("--clear-fraction", type=float, default=0.9,
                    help="hits whose dominant particle brought at least this share of the truth charge "
                         "count as clear (reported apart from the mixed ones)")
    ap.add_argument("--charge-bins", type=int, default=12, help="bins of hit integral (log-spaced)")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)

    files = [args.results] + args.compare
    labels = args.labels.split(",") if args.labels else [os.path.splitext(os.path.basename(f))[0] for f in files]
    if len(labels) != len(files):
        raise SystemExit(f"--labels has {len(labels)} names for {len(files)} files")
    if len(set(labels)) != len(labels):
        labels = [f"{lab}_{i}" for i, lab in enumerate(labels)]
    data = [read_results(f) for f in files]
    if patchdata.parse_delta_rays(args.delta_rays)[0] == "size":
        for f, (hits, _) in zip(files, data):
            if KINETIC not in hits:
                raise SystemExit(f"{f}: --delta-rays {args.delta_rays} needs /hits/{KINETIC} (the kinetic "
                                 "energy of each hit's particle at creation), which this results file lacks: "
                                 "it was written by an older `larserve reco`; run `larserve reco` again")
    edges = charge_edges([h["integral"][h["category"] != NO_TRUTH] for h, _ in data], args.charge_bins)
    report = {"format": "larserve-performance", "schema_version": 1, "michel_threshold": args.michel_threshold,
              "delta_rays": args.delta_rays, "clear_fraction": args.clear_fraction,
              "purity_target": args.purity_target, "charge_bin_edges": edges.tolist(), "models": {}}
    curves = {}
    for lab, f, (hits, attrs) in zip(labels, files, data):
        res, curves[lab] = analyse(hits, args.michel_threshold, args.purity_target, edges, args.delta_rays,
                                   args.clear_fraction)
        report["models"][lab] = {"file": os.path.abspath(f), "attrs": attrs, **res}
    if len(files) > 1:
        report["agreement"] = {}
        for lab, (hits, _) in zip(labels[1:], data[1:]):
            a = agreement(data[0][0], hits)
            if a is not None:
                report["agreement"][f"{labels[0]} vs {lab}"] = a
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "performance.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    md = markdown(report)
    with open(os.path.join(args.output_dir, "performance.md"), "w") as fh:
        fh.write(md)
    if not args.no_plots:
        import matplotlib
        matplotlib.use("Agg")
        for lab in labels:
            plot_confusion(os.path.join(args.output_dir, f"confusion_{lab}.png"), lab, report["models"][lab])
        plot_vs_charge(os.path.join(args.output_dir, "eff_purity_vs_charge.png"), report, edges)
        plot_roc(os.path.join(args.output_dir, "michel_roc.png"), report, curves, args.purity_target)
    all_rows = [f"{lab}: " + ", ".join(
        f"{c} eff {fmt(m['planes']['all']['categories'][c]['efficiency'], 3)} pur "
        f"{fmt(m['planes']['all']['categories'][c]['purity'], 3)}" for c in ROWS)
        for lab, m in report["models"].items()]
    print(f"delta rays: {describe_delta_rays(args.delta_rays)}")
    print("\n".join(all_rows))
    print(f"wrote {args.output_dir}/performance.md, performance.json" + ("" if args.no_plots else " and plots"))
    return report


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
