#!/usr/bin/env bash
# End-to-end checks of `larserve reco --local`: simulated events through hit finding, patches
# and our engine to a results file that h5py reads (one row per hit, softmax scores, truth
# categories), and clean handling of an event without particles, an event without any hit, and
# corrupt or wrong inputs. The model is the random-weight EmTrackMichelId test model (the
# trained one is checked in tests/python/test_train.py and docs/physics/performance.md).
# Usage: reco_test.sh path/to/larserve path/to/python
set -u
LARSERVE="$1"
PYTHON="$2"
SRC="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
source "$(dirname "$0")/lib.sh"

"$PYTHON" "$SRC/python/make_test_models.py" "$WORK" >/dev/null || { echo "FAIL: cannot generate the test model"; exit 1; }
MODEL="$WORK/emtrkmichel_random.onnx"

# check_results FILE HITS EVENTS: the file holds HITS rows of consistent columns for EVENTS
# events, with softmax rows summing to 1 and sim categories (0-4).
check_results() {
  "$PYTHON" - "$@" <<'PY'
import sys, h5py, numpy as np
path, hits, events = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with h5py.File(path) as f:
    fmt = f.attrs["format"]
    assert (fmt.decode() if isinstance(fmt, bytes) else fmt) == "larserve-reco-results", fmt
    assert int(f.attrs["complete"]) == 1 and int(f.attrs["num_events"]) == events
    assert int(f.attrs["num_hits"]) == hits, (int(f.attrs["num_hits"]), hits)
    h = f["hits"]
    for name in ["event", "apa", "plane", "wire", "peak_tick", "width", "integral", "category",
                 "truth_id", "truth_fraction"]:
        assert h[name].shape == (hits,), name
    s = h["scores"][:]
    assert s.shape == (hits, 4)
    if hits:
        assert np.allclose(s[:, :3].sum(axis=1), 1, atol=1e-5)
        assert ((s[:, 3] >= 0) & (s[:, 3] <= 1)).all()
        assert set(np.unique(h["category"][:])) <= {0, 1, 2, 3, 4}
        assert set(np.unique(h["plane"][:])) <= {0, 1, 2}
        assert (np.diff(h["event"][:]) >= 0).all()
PY
}

"$LARSERVE" sim --events 2 --seed 3 -o "$WORK/ev.h5" >/dev/null 2>&1 || { echo "FAIL: sim"; exit 1; }
if "$LARSERVE" reco "$WORK/ev.h5" --local --model "$MODEL" -o "$WORK/res.h5" --threads 2 --json \
     >"$WORK/reco.json" 2>"$WORK/err"; then
  hits=$("$PYTHON" -c "import json; print(json.load(open('$WORK/reco.json'))['hits'])")
  if [[ $hits -gt 1000 ]] && grep -q '"W"' "$WORK/reco.json" && grep -q '"efficiency"' "$WORK/reco.json" &&
     check_results "$WORK/res.h5" "$hits" 2 2>>"$WORK/err"; then
    ok "reco --local: $hits hits, results readable with h5py, metrics per plane"
  else
    bad "reco --local results: $(cat "$WORK/err") $(head -c 300 "$WORK/reco.json")"
  fi
else
  bad "reco --local: $(cat "$WORK/err")"
fi
# --delta-rays em counts delta-ray hits as em in the summary: more true em (shower) hits, as
# many fewer true track hits, the same predictions; the JSON says which scheme.
if "$LARSERVE" reco "$WORK/ev.h5" --local --model "$MODEL" -o "$WORK/res_em.h5" --events 1 --json \
     --delta-rays em >"$WORK/em.json" 2>"$WORK/err" &&
   "$LARSERVE" reco "$WORK/ev.h5" --local --model "$MODEL" -o "$WORK/res_tr.h5" --events 1 --json \
     >"$WORK/tr.json" 2>>"$WORK/err" &&
   "$PYTHON" - "$WORK/em.json" "$WORK/tr.json" <<'PY' 2>>"$WORK/err"; then
import json, sys
em, tr = (json.load(open(p)) for p in sys.argv[1:])
assert em["delta_rays"] == "em" and tr["delta_rays"] == "track"
for plane in ("U", "V", "W"):
    a, b = em["metrics"][plane], tr["metrics"][plane]
    extra = a["shower"]["true"] - b["shower"]["true"]
    assert extra > 0 and b["track"]["true"] - a["track"]["true"] == extra, plane
    assert a["shower"]["predicted"] == b["shower"]["predicted"], plane
PY
  ok "reco --delta-rays em: delta rays counted as em in the summary"
else
  bad "reco --delta-rays em: $(cat "$WORK/err")"
fi
# --delta-rays size:5: delta rays below 5 MeV at creation count as track, the others as em. The
# results file carries each hit's kinetic energy at creation (NaN without a particle), from
# which the summary's counts follow exactly, and python/performance.py reproduces them.
if "$LARSERVE" reco "$WORK/ev.h5" --local --model "$MODEL" -o "$WORK/res_size.h5" --events 1 --json \
     --delta-rays size:5 >"$WORK/size.json" 2>"$WORK/err" &&
   "$PYTHON" - "$WORK/size.json" "$WORK/tr.json" "$WORK/res_size.h5" "$SRC/python" "$WORK/perf_size" <<'PY' >/dev/null 2>>"$WORK/err"; then
import json, sys
import h5py, numpy as np
sz, tr = (json.load(open(p)) for p in sys.argv[1:3])
assert sz["delta_rays"] == "size:5", sz["delta_rays"]
with h5py.File(sys.argv[3]) as f:
    h = f["hits"]
    kin, cat, tid, plane = (h[k][:] for k in ("truth_kinetic_mev", "category", "truth_id", "plane"))
assert kin.dtype == np.float32 and kin.shape == cat.shape
assert np.isnan(kin[tid < 0]).all() and np.isfinite(kin[tid >= 0]).all() and (kin[tid >= 0] > 0).all()
delta = cat == 4
assert (delta & (kin < 5)).any() and (delta & (kin >= 5)).any(), "want delta rays on both sides of 5 MeV"
for i, name in enumerate(("U", "V", "W")):
    large = int((delta & (kin >= 5) & (plane == i)).sum())
    a, b = sz["metrics"][name], tr["metrics"][name]
    assert b["track"]["true"] - a["track"]["true"] == large, name
    assert a["shower"]["true"] - b["shower"]["true"] == large, name
    assert a["shower"]["predicted"] == b["shower"]["predicted"], name
sys.path.insert(0, sys.argv[4])
import performance
rep = performance.main([sys.argv[3], "-o", sys.argv[5], "--no-plots", "--delta-rays", "size:5", "--labels", "m"])
for name in ("U", "V", "W"):
    p, r = rep["models"]["m"]["planes"][name]["categories"], sz["metrics"][name]
    assert (p["track"]["n_true"], p["em"]["n_true"]) == (r["track"]["true"], r["shower"]["true"]), name
    assert p["track"]["n_both"] / p["track"]["n_true"] == r["track"]["efficiency"], name
PY
  ok "reco --delta-rays size:5: delta rays split at 5 MeV, truth_kinetic_mev written, performance.py agrees"
else
  bad "reco --delta-rays size:5: $(tail -c 1500 "$WORK/err")"
fi
for v in size: size:-1 size:abc foo; do
  expect_error "reco --delta-rays $v refused" "delta-ray scheme '$v'" \
    "$LARSERVE" reco "$WORK/ev.h5" --local --model "$MODEL" -o "$WORK/res_bad.h5" --delta-rays "$v"
done
if "$LARSERVE" reco "$WORK/ev.h5" --local --model "$MODEL" -o "$WORK/res_bad.h5" --delta-rays shower \
     >/dev/null 2>"$WORK/err"; then
  bad "reco --delta-rays shower was accepted"
else
  ok "reco --delta-rays shower refused: $(head -c 120 "$WORK/err")"
fi
# The table names every stage.
if "$LARSERVE" reco "$WORK/ev.h5" --local --model "$MODEL" -o "$WORK/res2.h5" --events 1 >"$WORK/table" 2>"$WORK/err" &&
   grep -q "inference" "$WORK/table" && grep -q "patches" "$WORK/table" && grep -q "michel eff/pur" "$WORK/table"; then
  ok "reco summary table"
else
  bad "reco summary table: $(cat "$WORK/err" "$WORK/table")"
fi

# INT8 calibrated from a patch file (larserve patches), then reconstruction through the plan.
# Calibration runs the model on the reference backend (plain loops): 64 patches keep it short.
if "$LARSERVE" patches "$WORK/ev.h5" -o "$WORK/calib.h5" >/dev/null 2>"$WORK/err" &&
   "$LARSERVE" build "$MODEL" -o "$WORK/m8.plan" --device cpu --precision int8 --calib "$WORK/calib.h5" \
     --calib-patches 64 --calib-cache "$WORK/m8.calib" >/dev/null 2>>"$WORK/err" &&
   "$LARSERVE" reco "$WORK/ev.h5" --local --model "$WORK/m8.plan" -o "$WORK/res8.h5" --events 1 --json >"$WORK/r8.json" 2>>"$WORK/err" &&
   grep -q '"precision": "int8"' "$WORK/r8.json" && [[ -s "$WORK/m8.calib" ]]; then
  ok "int8 plan calibrated from a patch file reconstructs"
else
  bad "int8 from patches: $(cat "$WORK/err")"
fi

# An event without particles (noise only) and an event without any hit (no noise either).
"$LARSERVE" sim --events 1 --no-cosmics --no-beam -o "$WORK/empty.h5" >/dev/null 2>&1
if "$LARSERVE" reco "$WORK/empty.h5" --local --model "$MODEL" -o "$WORK/empty_res.h5" --json >"$WORK/e.json" 2>"$WORK/err"; then
  hits=$("$PYTHON" -c "import json; print(json.load(open('$WORK/e.json'))['hits'])")
  check_results "$WORK/empty_res.h5" "$hits" 1 2>>"$WORK/err" && ok "event without particles ($hits noise hits)" ||
    bad "event without particles: $(cat "$WORK/err")"
else
  bad "event without particles: $(cat "$WORK/err")"
fi
echo '{"readout": {"noise": false}, "cosmics": {"enabled": false}, "beam": {"enabled": false}}' >"$WORK/quiet.json"
if "$LARSERVE" sim --events 1 --config "$WORK/quiet.json" -o "$WORK/quiet.h5" >/dev/null 2>"$WORK/err" &&
   "$LARSERVE" reco "$WORK/quiet.h5" --local --model "$MODEL" -o "$WORK/quiet_res.h5" --json >"$WORK/q.json" 2>>"$WORK/err" &&
   grep -q '"hits": 0' "$WORK/q.json" && check_results "$WORK/quiet_res.h5" 0 1 2>>"$WORK/err"; then
  ok "event without hits"
else
  bad "event without hits: $(cat "$WORK/err")"
fi

# Bad inputs: clear errors, never a crash.
expect_error "reco without --local or --server" "either .-local" "$LARSERVE" reco "$WORK/ev.h5" --model "$MODEL" -o "$WORK/x.h5"
expect_error "missing events file" "does not exist|cannot open" "$LARSERVE" reco "$WORK/none.h5" --local --model "$MODEL" -o "$WORK/x.h5"
size=$(stat -c %s "$WORK/ev.h5")
head -c $((size / 2)) "$WORK/ev.h5" >"$WORK/trunc.h5"
expect_error "truncated events file" "truncated|corrupt|cannot|not a|incomplete" "$LARSERVE" reco "$WORK/trunc.h5" --local --model "$MODEL" -o "$WORK/x.h5"
cp "$WORK/ev.h5" "$WORK/flip.h5"
# Damage the stored signal well inside the file (past the headers): a checksum must catch it.
head -c 4096 /dev/urandom | dd of="$WORK/flip.h5" bs=1 seek=$((size * 2 / 3)) conv=notrunc status=none
expect_error "corrupt events file" "checksum|corrupt|cannot be read|crc|invalid|refused" "$LARSERVE" reco "$WORK/flip.h5" --local --model "$MODEL" -o "$WORK/x.h5"
expect_error "model that is not a model" "model" "$LARSERVE" reco "$WORK/ev.h5" --local --model "$WORK/ev.h5" -o "$WORK/x.h5"
"$PYTHON" - "$WORK/wrong.onnx" <<'PY'
import sys, onnx
from onnx import helper, TensorProto
x = helper.make_tensor_value_info("main_input", TensorProto.FLOAT, ["N", 32, 32, 1])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 32, 32, 1])
g = helper.make_graph([helper.make_node("Relu", ["main_input"], ["y"])], "wrong", [x], [y])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
m.ir_version = 8
onnx.save(m, sys.argv[1])
PY
expect_error "model with another input shape" "48, 48, 1" "$LARSERVE" reco "$WORK/ev.h5" --local --model "$WORK/wrong.onnx" -o "$WORK/x.h5"
expect_error "unwritable output" "cannot create" "$LARSERVE" reco "$WORK/ev.h5" --local --model "$MODEL" -o "$WORK/no/such/dir/r.h5"

finish
