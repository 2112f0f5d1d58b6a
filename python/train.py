#!/usr/bin/env python3
"""Trains the EmTrackMichelId hit classifier on `larserve patches` files and exports it to ONNX
with the production tensor names, so a LArSoft client configured for Fermilab's served model
`cnn_emtrkmichel_1` works unchanged (FACTS.md sections 2 and 5).

    python/train.py patches.h5 --arch production -o model.onnx
    python/train.py patches.h5 --arch compact -o compact.onnx --epochs 10
    python/train.py train_npy/ --arch compact --device cuda --amp -o compact.onnx   # GPU, no h5py
    python/train.py a.h5 b.h5 --val-files c.h5 --optimizer adam --lr 1e-3 -o m.onnx

Architectures (input `main_input` [N,48,48,1] float32 NHWC; outputs
`em_trk_none_netout/Softmax` [N,3] (track, em, none) and `michel_netout/Sigmoid` [N,1]):

  production  FACTS.md section 2, exactly: Conv2D 48x5x5 valid + ReLU, Dropout 0.2, Flatten in
              TensorFlow's NHWC order, Dense 128 ReLU, Dropout 0.2, Dense 32 ReLU, Dropout 0.2,
              heads Dense 3 softmax and Dense 1 sigmoid. 11,900,420 parameters.
  compact     ours: Conv 5x5x16 + BN + ReLU, MaxPool 2, Conv 3x3x32 + BN + ReLU, MaxPool 2,
              Dropout 0.2, Dense 64 ReLU, Dropout 0.2, Dense 32 ReLU, the same heads.
              ~56x fewer parameters, ~5x fewer FLOPs; BN folds into the convs at export.

Targets (--target):

  3class      (default) the production scheme: Dense 3 softmax over (track, em, none) trained with
              categorical cross-entropy, plus the Dense 1 sigmoid Michel head trained with MSE.
  5class      one Dense 5 softmax head over the sim categories (track, delta, shower, michel,
              none), from the patches' `category` (kind 1 empty patches and category 0: none),
              trained with 5-way cross-entropy only: there is no separate Michel head and no MSE
              term. Delta rays and Michel electrons are classes of their own instead of being
              hidden inside "track" and "em". The ONNX keeps the production interface exactly:
              `em_trk_none_netout/Softmax` = softmax5 @ M (M the constant 5x3 0/1 merge
              matrix: track+delta, shower+michel, none) and `michel_netout/Sigmoid` =
              softmax5 @ e_michel (constant 5x1 one-hot), i.e. P(michel) of the same softmax
              (so P(michel) <= the em column). Only Softmax and MatMul are added to the graph.
              Production: 11,900,420 + 66 (Dense 5 instead of 3) - 33 (no Michel head) =
              11,900,453 trainable parameters (+20 constant merge entries in the ONNX).

Training recipe defaults (FACTS.md section 2, the original Keras training): SGD lr 0.01, Nesterov
momentum 0.9, Keras time-based decay 1e-5 (lr / (1 + decay * step)), loss 0.1 x categorical
cross-entropy + 1.0 x MSE of the Michel sigmoid, batch 256, 30 epochs (5class: --ce-weight x
5-way cross-entropy, default 1.0). Validation patches are
whole events (by event number and file), never random patches of the training events.

The data are copied once into device memory (float32, or float16 when that does not fit) and
random batches are indexed on the device: no per-sample Python data loader. Export is always
FP32, then checked with onnx.checker and against onnxruntime when those are importable. A JSON
sidecar (model.json beside model.onnx) records the data, recipe, device, time and results.
"""
import os

# cuBLAS needs this before it is initialised for deterministic results (torch docs, "Reproducibility").
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import argparse  # noqa: E402
import copy  # noqa: E402
import hashlib  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import patchdata  # noqa: E402

INPUT_NAME = "main_input"
OUTPUT_NAMES = ("em_trk_none_netout/Softmax", "michel_netout/Sigmoid")  # FACTS.md section 5
PRODUCTION_PARAMETERS = 11_900_420  # FACTS.md section 2: 1,248 + 11,894,912 + 4,128 + 132
CE_WEIGHT, MSE_WEIGHT = 0.1, 1.0  # FACTS.md section 2: loss weights of the original training
TARGETS = ("3class", "5class")
FINE_NAMES = ("track", "delta", "shower", "michel", "none")  # the 5class target's classes
# sim category (0 none, 1 track, 2 shower, 3 michel, 4 delta) -> FINE_NAMES index
CATEGORY_TO_FINE = np.array([4, 0, 2, 3, 1], np.int64)
# FINE_NAMES -> the production classes (track, em, none): the 5x3 0/1 matrix of the export.
# Delta rays are track-like in the original scheme (the default); `larserve patches
# --delta-rays em` labels them em (FACTS.md section 3), and the merge follows the data.
# `--delta-rays size:E` (a delta ray below E MeV track, the others em): the fine class of a
# short delta ray's patch is track (its label says which side of E it is), the fine class delta
# holds the long ones and merges into em.
FINE_TO_3_BY_DELTA = {"track": np.array([0, 0, 1, 1, 2], np.int64),
                      "em": np.array([0, 1, 1, 1, 2], np.int64)}
FINE_TO_3 = FINE_TO_3_BY_DELTA["track"]
MERGE_5_TO_3 = np.eye(3)[FINE_TO_3]  # [5, 3]
MICHEL_5 = np.eye(5)[:, [3]]  # [5, 1]: P(michel) column


def merge_scheme(delta_rays):
    """The FINE_TO_3_BY_DELTA key of a delta-ray scheme: size:E merges as em (its short delta rays
    are in the fine class track already). ValueError naming a bad scheme."""
    scheme, _ = patchdata.parse_delta_rays(delta_rays)
    return "em" if scheme == "size" else scheme


def merge_matrix(delta_rays="track"):
    """The [5, 3] 0/1 merge of FINE_NAMES into (track, em, none) for a delta-ray scheme."""
    return np.eye(3)[FINE_TO_3_BY_DELTA[merge_scheme(delta_rays)]]
ONNX_OPSET = 17


# ----------------------------------------------------------------------------------- models

def check_target(target):
    if target not in TARGETS:
        raise ValueError(f"target {target!r}: expected one of {TARGETS}")
    return target


def heads(target):
    """(classification head, Michel head): 3class Dense 3 + Dense 1 (the production heads);
    5class one Dense 5 over FINE_NAMES and no Michel head (P(michel) comes from the softmax)."""
    if target == "5class":
        return nn.Linear(32, 5), None
    return nn.Linear(32, 3), nn.Linear(32, 1)


def probabilities(em_logits, mi_logit, merge=None, michel=None, delta_rays="track"):
    """(P(track, em, none) [N,3], P(michel) [N,1]) from the heads' outputs. 5class (no Michel
    logit): the 5-way softmax times constant 0/1 matrices (MatMul with initializers in the ONNX;
    no Slice/Gather/Constant). merge, michel: those matrices as tensors (Exported's buffers);
    without them, the merge of `delta_rays`."""
    p = torch.softmax(em_logits, dim=1)
    if mi_logit is not None:
        return p, torch.sigmoid(mi_logit)
    if merge is None:
        merge = torch.tensor(merge_matrix(delta_rays), dtype=p.dtype, device=p.device)
        michel = torch.tensor(MICHEL_5, dtype=p.dtype, device=p.device)
    return torch.matmul(p, merge.to(p.dtype)), torch.matmul(p, michel.to(p.dtype))


class Production(nn.Module):
    """EmTrackMichelId exactly as FACTS.md section 2. forward() returns logits; softmax and
    sigmoid are applied by the loss and by the exported wrapper."""

    def __init__(self, target="3class"):
        super().__init__()
        self.target = check_target(target)
        self.conv = nn.Conv2d(1, 48, 5)  # valid: 48 -> 44
        self.drop0 = nn.Dropout(0.2)
        self.dense1 = nn.Linear(44 * 44 * 48, 128)
        self.drop1 = nn.Dropout(0.2)
        self.dense2 = nn.Linear(128, 32)
        self.drop2 = nn.Dropout(0.2)
        self.em_trk_none, self.michel = heads(self.target)
        # Keras defaults of the original: glorot_uniform kernels, zero biases.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):  # x: [N, 48, 48, 1], NHWC as in TensorFlow
        x = F.relu(self.conv(x.permute(0, 3, 1, 2)))
        # Back to NHWC before flattening: dense1's input order (h, w, c) is Keras's, so weights
        # can be moved between this model and the Keras original (kernel transposed).
        x = torch.flatten(self.drop0(x.permute(0, 2, 3, 1)), 1)
        x = self.drop1(F.relu(self.dense1(x)))
        x = self.drop2(F.relu(self.dense2(x)))
        return self.em_trk_none(x), (None if self.michel is None else self.michel(x))


class Compact(nn.Module):
    """Our smaller model: two conv + batch-norm + max-pool stages keep a 10x10 map of the patch
    (position matters: the label is the centre hit's), then the production dense tail at half
    width. Only ops the larserve engine runs: Conv (BN folded), Relu, MaxPool, Flatten, Gemm,
    Softmax, Sigmoid (plus the input Transpose)."""

    def __init__(self, c1=16, c2=32, hidden=64, target="3class"):
        super().__init__()
        self.target = check_target(target)
        self.conv1 = nn.Conv2d(1, c1, 5, bias=False)  # 48 -> 44
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, bias=False)  # 22 -> 20
        self.bn2 = nn.BatchNorm2d(c2)
        self.drop0 = nn.Dropout(0.2)
        self.dense1 = nn.Linear(c2 * 10 * 10, hidden)
        self.drop1 = nn.Dropout(0.2)
        self.dense2 = nn.Linear(hidden, 32)
        self.drop2 = nn.Dropout(0.2)
        self.em_trk_none, self.michel = heads(self.target)

    def forward(self, x):  # x: [N, 48, 48, 1]
        x = x.permute(0, 3, 1, 2)
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)  # 22x22
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)  # 10x10
        x = torch.flatten(self.drop0(x), 1)
        x = self.drop1(F.relu(self.dense1(x)))
        x = self.drop2(F.relu(self.dense2(x)))
        return self.em_trk_none(x), (None if self.michel is None else self.michel(x))


ARCHS = {"production": Production, "compact": Compact}  # constructors take target="3class"|"5class"


class Exported(nn.Module):
    """What goes into the ONNX file: probabilities under the production output names."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        if getattr(net, "target", "3class") != "5class":
            self.merge = self.michel = None
        else:
            # The merge matrices as buffers: exported as initializers (non-persistent ones become
            # Constant nodes, which the engine does not run). Exported is never saved. 3class has
            # none, so its ONNX is byte-identical to before --target existed.
            p = next(net.parameters())
            merge = merge_matrix(getattr(net, "delta_rays", "track"))
            self.register_buffer("merge", torch.tensor(merge, dtype=p.dtype, device=p.device))
            self.register_buffer("michel", torch.tensor(MICHEL_5, dtype=p.dtype, device=p.device))

    def forward(self, main_input):
        return probabilities(*self.net(main_input), self.merge, self.michel)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model):
    """Multiply-accumulates per patch of the Conv and Linear layers (pooling, ReLU, softmax and
    the folded batch norm are a few thousand operations more and left out)."""
    macs = []

    def conv_hook(m, inp, out):
        macs.append(out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])

    def linear_hook(m, inp, out):
        macs.append(m.in_features * m.out_features)

    hooks = [m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook)
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        p = next(model.parameters())
        model(torch.zeros(1, 48, 48, 1, device=p.device, dtype=p.dtype))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return int(sum(macs))


# ------------------------------------------------------------------------------------- data

class Dataset:
    """All patches in one tensor `x` [N,48,48,1] (on the training device when it fits) plus
    labels; `groups` numbers the events (file, event) for the validation split."""

    def __init__(self, x, label, michel, groups, files, fine=None):
        self.x, self.label, self.michel, self.groups, self.files = x, label, michel, groups, files
        self.fine = fine  # FINE_NAMES index per patch (5class target), else None

    def target(self, kind):
        """The training target: the 3-class label or the 5-class fine label."""
        return self.fine if kind == "5class" else self.label

    def __len__(self):
        return len(self.label)


def choose_storage(n, device, want_dtype):
    """(dtype, device) for the patch tensor: float32 on the device if it fits in 60% of the free
    memory, else float16 on the device, else float16 in pinned host memory."""
    per32 = 48 * 48 * 4
    if device.type != "cuda":
        return (torch.float16 if want_dtype == "float16" else torch.float32), device
    free, _ = torch.cuda.mem_get_info(device)
    budget = 0.6 * free
    if want_dtype in ("auto", "float32") and n * per32 < budget:
        return torch.float32, device
    if want_dtype == "float32":
        print(f"warning: {n} float32 patches ({n * per32 / 2**30:.1f} GiB) do not fit on the GPU; "
              "keeping them in host memory", file=sys.stderr)
        return torch.float32, torch.device("cpu")
    if n * per32 / 2 < budget:
        return torch.float16, device
    print("warning: patches do not fit on the GPU even as float16; keeping them in pinned host "
          "memory (batches are copied each step)", file=sys.stderr)
    return torch.float16, torch.device("cpu")


def load_data(paths, device, data_dtype="auto", limit=0, chunk=32768, fine=False):
    """Copies all patches (or `limit` of them, evenly spread over the files so that every event
    and plane keeps some) chunk by chunk into one tensor. fine: also the 5class labels
    (FINE_NAMES) from `category` (and `kind`: empty patches are none)."""
    sources = [patchdata.open_patches(p) for p in paths]
    sizes = np.array([len(s) for s in sources], np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    if limit and limit < starts[-1]:
        pick = np.unique(np.linspace(0, starts[-1] - 1, limit).round().astype(np.int64))
    else:
        pick = np.arange(starts[-1])
    n = len(pick)
    if n == 0:
        raise SystemExit(f"no patches in {', '.join(paths)}")
    dtype, store = choose_storage(n, device, data_dtype)
    pin = store.type == "cpu" and device.type == "cuda"
    x = torch.empty((n,) + patchdata.PATCH_SHAPE, dtype=dtype, device=store, pin_memory=pin)
    label = np.empty(n, np.int64)
    michel = np.empty(n, np.float32)
    keys = np.full((n, 4), -1, np.int64)  # file, event, apa, plane: the split groups
    fine_label = np.empty(n, np.int64) if fine else None
    files, row = [], 0
    # The delta-ray scheme the labels were made with (`larserve patches --delta-rays`; files
    # without the attribute use the original, track). All files must agree.
    schemes = {patchdata._str(s.attrs.get("delta_rays", "track")) for s in sources}
    try:
        schemes = {patchdata.delta_rays_name(d) for d in schemes}
    except ValueError:
        schemes.add(None)
    if len(schemes) != 1 or None in schemes:
        raise SystemExit(f"patch files disagree on, or have an unknown, delta-ray scheme: "
                         f"{sorted(map(str, schemes))} (expected track, em or size:E, the same in every file)")
    delta_rays = schemes.pop()
    # size:E labels each delta ray by its energy (the label column holds the result): 3class
    # takes it as is; for 5class a delta ray labelled track is put in the fine class track.
    sized = patchdata.parse_delta_rays(delta_rays)[0] == "size"
    fine_to_3 = FINE_TO_3_BY_DELTA[merge_scheme(delta_rays)]
    for fi, s in enumerate(sources):
        mine = pick[(pick >= starts[fi]) & (pick < starts[fi + 1])] - starts[fi]
        cnt = len(mine)
        done = 0
        for b0 in range(0, len(s), chunk):  # blocks of file rows: memory is one block
            sel = mine[(mine >= b0) & (mine < b0 + chunk)]
            if len(sel) == 0:
                continue
            a = s.read("patches", int(sel[0]), int(sel[-1]) + 1)[sel - sel[0]]
            a = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
            x[row + done:row + done + len(sel)] = a.to(dtype).to(store)
            done += len(sel)
        label[row:row + cnt] = s.read("label")[mine]
        michel[row:row + cnt] = s.read("michel")[mine]
        keys[row:row + cnt, 0] = fi
        if fine:
            if not s.has("category"):
                raise SystemExit(f"--target 5class needs the `category` dataset, missing in {s.path}")
            cat = s.read("category")[mine].astype(np.int64)
            if cnt and (cat.min() < 0 or cat.max() > 4):
                raise SystemExit(f"{s.path}: category outside 0..4 (none, track, shower, michel, delta)")
            f5 = CATEGORY_TO_FINE[cat]
            if s.has("kind"):
                f5[s.read("kind")[mine] == 1] = FINE_NAMES.index("none")
            if sized:  # short delta rays (labelled track): fine class track
                f5[(f5 == FINE_NAMES.index("delta")) & (label[row:row + cnt] == 0)] = FINE_NAMES.index("track")
            bad = np.flatnonzero(fine_to_3[f5] != label[row:row + cnt])
            if len(bad):
                raise SystemExit(f"{s.path}: category and label disagree at {len(bad)} patches "
                                 f"(first row {int(mine[bad[0]])})")
            fine_label[row:row + cnt] = f5
        for j, name in enumerate(("event", "apa", "plane"), start=1):
            if s.has(name):
                keys[row:row + cnt, j] = s.read(name)[mine]
        files.append({"path": os.path.abspath(s.path), "bytes": s.size_bytes(), "patches": len(s),
                      "used": cnt, "attrs": s.attrs})
        row += cnt
        s.close()
    if label.min() < 0 or label.max() > 2:
        raise SystemExit(f"labels outside 0..2 (track, em, none) in {', '.join(paths)}")
    ds = Dataset(x, torch.from_numpy(label), torch.from_numpy(michel), keys, files,
                 None if fine_label is None else torch.from_numpy(fine_label))
    ds.delta_rays = delta_rays
    return ds


def split_groups(keys, val_frac, seed):
    """Validation = a random set of whole events (file, event). When the data hold a single
    event, falls back to (event, APA) and then (event, APA, plane) groups, with a warning: those
    still never share a patch, but neighbouring planes see the same particles."""
    if val_frac <= 0:
        return np.arange(len(keys)), np.zeros(0, np.int64), "none"
    for ncols, level in ((2, "event"), (3, "event+apa"), (4, "event+apa+plane")):
        _, gid = np.unique(keys[:, :ncols], axis=0, return_inverse=True)
        gid = gid.reshape(-1)
        n_groups = gid.max() + 1
        if n_groups >= 2:
            break
    else:
        raise SystemExit("cannot make a validation split: all patches come from one event, APA "
                         "and plane (use --val-frac 0 or more events)")
    if level != "event":
        print(f"warning: only one event: validation split by {level}", file=sys.stderr)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_groups)
    n_val_groups = min(n_groups - 1, max(1, int(round(val_frac * n_groups))))
    is_val = np.zeros(n_groups, bool)
    is_val[order[:n_val_groups]] = True
    val = np.flatnonzero(is_val[gid])
    train = np.flatnonzero(~is_val[gid])
    return train, val, level


# --------------------------------------------------------------------------------- training

def set_seed(seed, deterministic):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True


def make_optimizer(args, model, device):
    cls = torch.optim.SGD if args.optimizer == "sgd" else torch.optim.Adam
    kw = {"lr": args.lr, "weight_decay": args.weight_decay}
    if args.optimizer == "sgd":
        kw.update(momentum=args.momentum, nesterov=args.momentum > 0)
    if device.type == "cuda" and "fused" in inspect.signature(cls).parameters:
        kw["fused"] = True  # one kernel for all parameters (torch >= 2.x): less launch overhead
    opt = cls(model.parameters(), **kw)
    # Keras's time-based decay of the original training: lr_t = lr / (1 + decay * iterations).
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1.0 + args.lr_decay * step))
    return opt, sched


def class_weights(spec, labels, names=patchdata.CLASS_NAMES):
    """Cross-entropy weights of the classes `names` (3class: track, em, none; 5class:
    FINE_NAMES) from the training labels."""
    k = len(names)
    if not spec or spec == "none":
        return None
    if spec == "auto":  # inverse frequency, mean weight over the training patches = 1
        counts = np.bincount(labels, minlength=k).astype(np.float64)
        w = np.where(counts > 0, counts.sum() / (k * np.maximum(counts, 1)), 0.0)
    else:
        w = np.array([float(v) for v in spec.split(",")], np.float64)
        if len(w) != k:
            raise SystemExit(f"--class-weights: auto, none or {k} numbers ({','.join(names)})")
    return torch.tensor(w, dtype=torch.float32)


def losses(em_logits, mi_logit, y, m, cw, ce_weight=CE_WEIGHT):
    """3class: 0.1 x categorical cross-entropy + 1.0 x MSE of the Michel probability (FACTS.md
    2). 5class (mi_logit None, y the 5-class label): ce_weight x 5-way cross-entropy only; `mse`
    is then the MSE (Brier score) of P(michel) from the softmax, reported but not trained on."""
    ce = F.cross_entropy(em_logits.float(), y, weight=cw)
    if mi_logit is None:
        with torch.no_grad():
            mse = F.mse_loss(probabilities(em_logits.float(), None)[1].squeeze(1), m)
        return ce_weight * ce, ce, mse
    mse = F.mse_loss(torch.sigmoid(mi_logit.float()).squeeze(1), m)
    return ce_weight * ce + MSE_WEIGHT * mse, ce, mse


class Meter:
    """Sums on the device (no host sync per step)."""

    def __init__(self, device, delta_rays="track"):
        self.n = 0
        self.t = torch.zeros(6, dtype=torch.float64, device=device)
        self.fine = False
        self.delta_rays = delta_rays

    def add(self, n, loss, ce, mse, em_logits, mi_logit, y, m, y5=None):
        """y: the 3-class label; y5: the 5-class label (5class, em_logits then has 5 columns).
        `acc` is always the 3-class accuracy (5class: argmax of the merged probabilities)."""
        with torch.no_grad():
            if mi_logit is None:
                p3, pm = probabilities(em_logits, None, delta_rays=self.delta_rays)
                correct = (p3.argmax(1) == y).sum()
                mcorrect = ((pm.squeeze(1) > 0.5).float() == m).sum()
                correct5 = (em_logits.argmax(1) == y5).sum()
                self.fine = True
            else:
                correct = (em_logits.argmax(1) == y).sum()
                mcorrect = ((mi_logit.squeeze(1) > 0).float() == m).sum()
                correct5 = torch.zeros((), device=correct.device)
            self.t += torch.stack([loss.double() * n, ce.double() * n, mse.double() * n,
                                   correct.double(), mcorrect.double(), correct5.double()])
            self.n += n

    def result(self):
        loss, ce, mse, correct, mcorrect, correct5 = self.t.tolist()
        n = max(self.n, 1)
        r = {"loss": loss / n, "ce": ce / n, "mse": mse / n, "acc": correct / n, "michel_acc": mcorrect / n}
        if self.fine:
            r["acc5"] = correct5 / n
        return r


def batch(ds, idx, device):
    """One batch: indexed where the data live (the GPU when they fit), then moved and cast:
    (x, 3-class label, michel, 5-class label or None)."""
    x = ds.x[idx].to(device, non_blocking=True).float()
    y5 = None if ds.fine is None else ds.fine[idx].to(device, non_blocking=True)
    return (x, ds.label[idx].to(device, non_blocking=True), ds.michel[idx].to(device, non_blocking=True), y5)


def evaluate(model, ds, idx, device, cw, batch_size, amp, ce_weight=CE_WEIGHT):
    """Validation metrics. `acc` and `confusion` are 3-class (5class: after the merge), the
    Michel AUC is of the exported Michel score (5class: P(michel) of the softmax); 5class adds
    `acc5` and `confusion5` (FINE_NAMES, true x predicted)."""
    model.eval()
    delta_rays = getattr(model, "delta_rays", "track")
    meter = Meter(device, delta_rays)
    per_class = torch.zeros(3, 3, dtype=torch.int64, device=device)  # true x predicted
    per_fine = torch.zeros(5, 5, dtype=torch.int64, device=device)
    scores = []
    fine = False
    with torch.no_grad():
        for s in range(0, len(idx), batch_size):
            b = idx[s:s + batch_size]
            x, y, m, y5 = batch(ds, b, device)
            with autocast(device, amp):
                em, mi = model(x)
            em = em.float()
            if mi is None:  # 5class
                fine = True
                loss, ce, mse = losses(em, None, y5, m, cw, ce_weight)
                meter.add(len(b), loss, ce, mse, em, None, y, m, y5)
                p3, pm = probabilities(em, None, delta_rays=delta_rays)
                per_class += torch.bincount(y * 3 + p3.argmax(1), minlength=9).view(3, 3)
                per_fine += torch.bincount(y5 * 5 + em.argmax(1), minlength=25).view(5, 5)
                scores.append(pm.squeeze(1))
            else:
                loss, ce, mse = losses(em, mi, y, m, cw, ce_weight)
                meter.add(len(b), loss, ce, mse, em, mi.float(), y, m)
                per_class += torch.bincount(y * 3 + em.argmax(1), minlength=9).view(3, 3)
                scores.append(mi.float().squeeze(1))  # logits: same order as the sigmoid
    r = meter.result()
    r["confusion"] = per_class.tolist()
    if fine:
        r["confusion5"] = per_fine.tolist()
    r["michel_auc"] = auc(torch.cat(scores).cpu().numpy(), ds.michel[idx].cpu().numpy() > 0.5)
    return r


def auc(score, truth):
    """Area under the ROC curve (Mann-Whitney, ties counted one half); None without both classes."""
    p, n = int(truth.sum()), int((~truth).sum())
    if p == 0 or n == 0:
        return None
    _, inv, counts = np.unique(score, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    ranks = (upper - (counts - 1) / 2.0)[inv.reshape(-1)]  # average 1-based ranks
    return float((ranks[truth].sum() - p * (p + 1) / 2.0) / (p * n))


def autocast(device, amp):
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return torch.autocast(device_type="cpu", enabled=False)


def train(args, model, ds, train_idx, val_idx, device):
    opt, sched = make_optimizer(args, model, device)
    fine = args.target == "5class"
    names = FINE_NAMES if fine else patchdata.CLASS_NAMES
    cw = class_weights(args.class_weights, ds.target(args.target)[train_idx].cpu().numpy(), names)
    if cw is not None:
        print(f"class weights ({', '.join(names)}):", ", ".join(f"{v:.3f}" for v in cw.tolist()))
        cw = cw.to(device)
    step_model = model
    if args.compile:
        step_model = torch.compile(model)
    train_dev = torch.from_numpy(train_idx).to(ds.x.device)
    val_dev = torch.from_numpy(val_idx).to(ds.x.device)
    ds.label, ds.michel = ds.label.to(ds.x.device), ds.michel.to(ds.x.device)
    if ds.fine is not None:
        ds.fine = ds.fine.to(ds.x.device)
    gen = torch.Generator().manual_seed(args.seed)  # CPU permutations: the same on any device
    history, step, best = [], 0, None
    steps_per_epoch = math.ceil(len(train_idx) / args.batch)
    t_start = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        meter = Meter(device, getattr(model, "delta_rays", "track"))
        t0 = time.time()
        order = train_dev[torch.randperm(len(train_idx), generator=gen).to(ds.x.device)]
        n_seen = 0
        for s in range(steps_per_epoch):
            if args.max_steps and step >= args.max_steps:
                break
            idx = order[s * args.batch:(s + 1) * args.batch]
            x, y, m, y5 = batch(ds, idx, device)
            with autocast(device, args.amp):
                em, mi = step_model(x)
            loss, ce, mse = losses(em, mi, y5 if fine else y, m, cw, args.ce_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            meter.add(len(idx), loss.detach(), ce.detach(), mse.detach(), em.detach().float(),
                      None if mi is None else mi.detach().float(), y, m, y5)
            step += 1
            n_seen += len(idx)
            if args.log_every and step % args.log_every == 0:
                print(f"  step {step} loss {loss.item():.4f}", flush=True)
        if n_seen == 0:
            break
        tr = meter.result()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t_train = time.time() - t0
        rec = {"epoch": epoch, "steps": step, "train": tr, "lr": sched.get_last_lr()[0],
               "train_seconds": t_train, "patches_per_s": n_seen / max(t_train, 1e-9)}
        line = (f"epoch {epoch:3d}/{args.epochs}  train loss {tr['loss']:.4f} (ce {tr['ce']:.4f} mse "
                f"{tr['mse']:.4f}) acc {tr['acc']:.4f} michel-acc {tr['michel_acc']:.4f}")
        if fine:
            line += f" acc5 {tr['acc5']:.4f}"
        if len(val_idx):
            va = evaluate(model, ds, val_dev, device, cw, args.eval_batch, args.amp, args.ce_weight)
            rec["val"] = va
            mauc = "-" if va["michel_auc"] is None else f"{va['michel_auc']:.4f}"
            line += (f" | val loss {va['loss']:.4f} (ce {va['ce']:.4f} mse {va['mse']:.4f}) acc "
                     f"{va['acc']:.4f} michel-acc {va['michel_acc']:.4f} michel-auc {mauc}")
            if fine:
                c5 = np.array(va["confusion5"], np.float64)
                rows = np.maximum(c5.sum(1), 1)
                line += (f" acc5 {va['acc5']:.4f} delta->em "
                         f"{c5[1, 2:4].sum() / rows[1]:.3f} michel->track {c5[3, 0:2].sum() / rows[3]:.3f}")
            if args.keep_best and (best is None or va["loss"] < best[0]):
                best = (va["loss"], epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
        line += f" | {t_train:.1f} s, {rec['patches_per_s']:.0f} patches/s"
        print(line, flush=True)
        history.append(rec)
        if args.max_steps and step >= args.max_steps:
            break
    seconds = time.time() - t_start
    if best is not None and best[1] != history[-1]["epoch"]:
        print(f"restoring the weights of epoch {best[1]} (lowest validation loss {best[0]:.4f})")
        model.load_state_dict(best[2])
    return history, seconds, (best[1] if best else None)


# ----------------------------------------------------------------------------------- export

def onnx_export(model, path):
    """FP32 export, opset 17, dynamic batch, production names. Uses the TorchScript exporter
    (dynamo=False where torch has the argument); falls back to the dynamo exporter if that one
    is gone."""
    wrapper = Exported(model).eval()
    x = torch.zeros(2, 48, 48, 1)
    kw = dict(opset_version=ONNX_OPSET, input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
              dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAMES[0]: {0: "N"}, OUTPUT_NAMES[1]: {0: "N"}},
              do_constant_folding=True)
    params = inspect.signature(torch.onnx.export).parameters
    if "dynamo" in params:
        kw["dynamo"] = False
    try:
        with warnings.catch_warnings():  # torch >= 2.9 warns that dynamo=False is the legacy exporter: chosen
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(wrapper, (x,), path, **kw)
    except Exception as e:  # noqa: BLE001
        if "dynamo" not in params:
            raise
        print(f"warning: TorchScript ONNX export failed ({e}); trying dynamo=True", file=sys.stderr)
        kw.pop("dynamic_axes")
        kw["dynamo"] = True
        kw["dynamic_shapes"] = ({0: torch.export.Dim("N", min=1, max=1 << 20)},)
        torch.onnx.export(wrapper, (x,), path, **kw)


def reference_scores(model, x):
    """The model's outputs computed in float64: the reference that exported models are held to
    (a float32 PyTorch run is itself ~1e-5 relative off for the 92,928-term dense layer)."""
    ref = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        return [t.numpy() for t in Exported(ref)(torch.from_numpy(np.asarray(x, np.float64)))]


def verify_onnx(model, path, seed=0, n=16):
    """onnx.checker, names and shapes; onnxruntime vs the float64 PyTorch model on a random
    patch-range batch: 1e-5 relative with a 1e-6 absolute floor (onnxruntime's Sigmoid is ~1e-7
    absolute off for tiny values)."""
    out = {}
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        onnx = None
        out["onnx_checker"] = "skipped (no onnx)"
    if onnx is not None:
        onnx.checker.check_model(path)
        m = onnx.load(path)
        inputs = [i.name for i in m.graph.input if i.name not in {t.name for t in m.graph.initializer}]
        outputs = [o.name for o in m.graph.output]
        if inputs != [INPUT_NAME] or outputs != list(OUTPUT_NAMES):
            raise RuntimeError(f"{path}: inputs {inputs}, outputs {outputs}; "
                               f"expected [{INPUT_NAME}], {list(OUTPUT_NAMES)}")
        out["onnx_checker"] = "ok"
        out["onnx_parameters"] = int(sum(numpy_helper.to_array(t).size for t in m.graph.initializer
                                         if t.data_type == onnx.TensorProto.FLOAT))
        out["onnx_opset"] = int(next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")))
        out["onnx_ops"] = sorted({nd.op_type for nd in m.graph.node})
    rng = np.random.default_rng(seed)
    x = rng.uniform(-5, 15, size=(n, 48, 48, 1)).astype(np.float32)
    x[: n // 2] *= rng.uniform(size=(n // 2, 48, 48, 1)) < 0.1  # sparse, patch-like half
    want = reference_scores(model, x)
    with torch.no_grad():
        t32 = [t.numpy() for t in Exported(model).eval()(torch.from_numpy(x))]
    out["torch_fp32_max_abs_diff"] = float(max(np.max(np.abs(a - b)) for a, b in zip(t32, want)))
    try:
        import onnxruntime as ort
    except ImportError:
        out["onnxruntime"] = "skipped (no onnxruntime)"
        return out
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(list(OUTPUT_NAMES), {INPUT_NAME: x})
    worst = 0.0
    for name, g, w in zip(OUTPUT_NAMES, got, want):
        if g.shape != w.shape:
            raise RuntimeError(f"onnxruntime output {name} has shape {g.shape}, PyTorch {w.shape}")
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=f"onnxruntime vs PyTorch (float64), {name}")
        worst = max(worst, float(np.max(np.abs(g - w))))
    out["onnxruntime"] = f"ok (max abs diff {worst:.2e} from float64 PyTorch on {n} random patches)"
    out["onnxruntime_max_abs_diff"] = worst
    return out


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


# ------------------------------------------------------------------------------------- main

def cpu_name():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    return f"{name} ({os.cpu_count()} CPUs, torch threads {torch.get_num_threads()})"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", help="patches: .h5 from `larserve patches`, .npy directories or .npz "
                    "from python/patches_to_npy.py")
    ap.add_argument("-o", "--output", default="model.onnx", help="ONNX file to write (default model.onnx)")
    ap.add_argument("--json", help="sidecar JSON (default: the output with .json)")
    ap.add_argument("--checkpoint", help="also save the PyTorch state_dict here (.pt)")
    ap.add_argument("--arch", choices=sorted(ARCHS), default="production")
    ap.add_argument("--target", choices=TARGETS, default="3class",
                    help="3class: the production heads and loss (default); 5class: one 5-way softmax over "
                    "track, delta, shower, michel, none (from `category`), exported merged to the production "
                    "outputs (see above)")
    ap.add_argument("--ce-weight", type=float, default=None,
                    help="weight of the cross-entropy term (default 0.1 for 3class, the original's; 1.0 for "
                    "5class, whose loss is the cross-entropy alone)")
    ap.add_argument("--width", type=lambda v: [int(x) for x in v.split(",")], default=None,
                    metavar="C1,C2,HIDDEN",
                    help="compact: channels of the two convolutions and width of the first dense layer "
                    "(default 16,32,64)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--eval-batch", type=int, default=4096)
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    ap.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default 0.01 sgd, 0.001 adam)")
    ap.add_argument("--momentum", type=float, default=0.9, help="SGD momentum, Nesterov (default 0.9)")
    ap.add_argument("--lr-decay", type=float, default=1e-5,
                    help="Keras time-based decay: lr / (1 + decay * step) (default 1e-5, the original's)")
    ap.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay (default 0)")
    ap.add_argument("--class-weights", default="none",
                    help="cross-entropy class weights: none, auto (inverse frequency) or w_track,w_em,w_none "
                    "(5class: w_track,w_delta,w_shower,w_michel,w_none)")
    ap.add_argument("--val-frac", type=float, default=0.1, help="fraction of events for validation (default 0.1)")
    ap.add_argument("--val-files", nargs="+", default=None, help="validation files instead of --val-frac")
    ap.add_argument("--limit", type=int, default=0,
                    help="use only N patches, evenly spread over the data (0: all)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--data-dtype", choices=["auto", "float32", "float16"], default="auto",
                    help="storage of the patches in memory (auto: float32 if it fits on the GPU, else float16)")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA (export stays FP32)")
    ap.add_argument("--channels-last", action="store_true", help="channels_last memory format on CUDA")
    ap.add_argument("--compile", action="store_true", help="torch.compile the training model (torch >= 2)")
    ap.add_argument("--nondeterministic", action="store_true",
                    help="allow cudnn.benchmark and nondeterministic kernels")
    ap.add_argument("--keep-best", action="store_true", help="export the epoch with the lowest validation loss")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    ap.add_argument("--log-every", type=int, default=0, help="print the loss every N steps")
    ap.add_argument("--no-verify", action="store_true", help="skip the onnx/onnxruntime checks of the export")
    args = ap.parse_args(argv)
    if args.lr is None:
        args.lr = 0.01 if args.optimizer == "sgd" else 0.001
    if args.ce_weight is None:
        args.ce_weight = CE_WEIGHT if args.target == "3class" else 1.0
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SystemExit("--device cuda: CUDA is not available")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 on, as TensorRT and Keras-on-GPU defaults
        torch.backends.cudnn.allow_tf32 = True
    set_seed(args.seed, not args.nondeterministic)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()

    t_load = time.time()
    files = list(args.data) + list(args.val_files or [])
    ds = load_data(files, device, args.data_dtype, args.limit, fine=args.target == "5class")
    if args.val_files:
        n_tr = sum(f["used"] for f in ds.files[:len(args.data)])
        train_idx, val_idx, level = np.arange(n_tr), np.arange(n_tr, len(ds)), "files"
    else:
        train_idx, val_idx, level = split_groups(ds.groups, args.val_frac, args.seed)
    counts = np.bincount(ds.label[train_idx].numpy(), minlength=3)
    print(f"data: {len(ds)} patches from {len(ds.files)} file(s) in {time.time() - t_load:.1f} s, stored "
          f"{str(ds.x.dtype).replace('torch.', '')} on {ds.x.device}; train {len(train_idx)} (track {counts[0]}, "
          f"em {counts[1]}, none {counts[2]}, michel {int(ds.michel[train_idx].sum())}), val {len(val_idx)} "
          f"(split by {level})")
    if ds.fine is not None:
        c5 = np.bincount(ds.fine[train_idx].cpu().numpy(), minlength=5)
        print("target 5class: train " + ", ".join(f"{k} {v}" for k, v in zip(FINE_NAMES, c5)))

    kw = {"target": args.target}
    if args.width:
        if args.arch != "compact":
            raise SystemExit("--width applies to --arch compact only")
        kw.update(zip(("c1", "c2", "hidden"), args.width))
    model = ARCHS[args.arch](**kw).to(device)
    model.delta_rays = ds.delta_rays
    print(f"delta rays: {ds.delta_rays} (from the patch files)")
    n_params = count_parameters(model)
    macs = count_macs(model)
    print(f"arch {args.arch} ({args.target}): {n_params:,} parameters, {macs:,} MACs ({2 * macs / 1e6:.2f} MFLOP) per patch; "
          f"device {device_name}")
    if args.arch == "production" and args.target == "3class":
        assert n_params == PRODUCTION_PARAMETERS, \
            f"production model has {n_params} parameters, FACTS.md says {PRODUCTION_PARAMETERS}"
    if args.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)

    history, seconds, best_epoch = train(args, model, ds, train_idx, val_idx, device)

    model = model.float().cpu().to(memory_format=torch.contiguous_format).eval()
    out_dir = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(out_dir, exist_ok=True)
    onnx_export(model, args.output)
    verify = {} if args.no_verify else verify_onnx(model, args.output, seed=args.seed)
    print(f"wrote {args.output}: " + ", ".join(f"{k} {v}" for k, v in verify.items()
                                                 if k in ("onnx_checker", "onnxruntime", "onnx_parameters")))
    if args.checkpoint:
        torch.save({"arch": args.arch, "target": args.target, "delta_rays": ds.delta_rays,
                    "width": list(args.width or []), "state_dict": model.state_dict()}, args.checkpoint)

    last = history[-1] if history else {}
    side = {
        "arch": args.arch,
        "target": args.target,
        "delta_rays": ds.delta_rays,
        "width": list(args.width or []),
        "classes": list(FINE_NAMES if args.target == "5class" else patchdata.CLASS_NAMES),
        "parameters": n_params,
        "macs_per_patch": macs,
        "flops_per_patch": 2 * macs,
        "onnx": {"path": os.path.abspath(args.output), "bytes": os.path.getsize(args.output),
                 "sha256": sha256(args.output), "opset": ONNX_OPSET, "input": INPUT_NAME,
                 "outputs": list(OUTPUT_NAMES), **verify},
        "data": [{k: f[k] for k in ("path", "bytes", "patches", "used")} for f in ds.files],
        "data_attrs": ds.files[0]["attrs"],
        "n_train": int(len(train_idx)), "n_val": int(len(val_idx)), "val_split": level,
        "train_class_counts": counts.tolist(),
        "train_fine_counts": None if ds.fine is None else np.bincount(ds.fine[train_idx].cpu().numpy(), minlength=5).tolist(),
        "epochs": args.epochs, "epochs_run": len(history), "steps": last.get("steps", 0),
        "best_epoch": best_epoch,  # --keep-best: the epoch whose weights were exported
        "exported_epoch": best_epoch or last.get("epoch"),
        "batch": args.batch, "optimizer": args.optimizer, "lr": args.lr, "momentum": args.momentum,
        "lr_decay": args.lr_decay, "weight_decay": args.weight_decay, "class_weights": args.class_weights,
        "ce_weight": args.ce_weight,
        "loss": (f"{args.ce_weight} x categorical cross-entropy + {MSE_WEIGHT} x MSE(michel sigmoid)"
                 if args.target == "3class" else
                 f"{args.ce_weight} x 5-way cross-entropy (track, delta, shower, michel, none); no Michel head, "
                 "no MSE term; exported em_trk_none = softmax5 @ merge[5x3], michel = P(michel)"),
        "amp": bool(args.amp and device.type == "cuda"), "data_dtype": str(ds.x.dtype).replace("torch.", ""),
        "train_seconds": seconds,
        "device": str(device), "device_name": device_name,
        "final_train": last.get("train"), "final_val": last.get("val"),
        "history": history,
        "seed": args.seed, "deterministic": not args.nondeterministic,
        "torch_version": torch.__version__, "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "command": " ".join(["train.py"] + (argv if argv is not None else sys.argv[1:])),
    }
    json_path = args.json or os.path.splitext(args.output)[0] + ".json"
    with open(json_path, "w") as fh:
        json.dump(side, fh, indent=1, default=str)
    print(f"wrote {json_path}")
    return side


if __name__ == "__main__":
    main()
