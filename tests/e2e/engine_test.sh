#!/usr/bin/env bash
# End-to-end checks of larserve build / exec on a generated EmTrackMichelId-shaped model:
# the happy path (plan written, loaded, run; optimised outputs equal the unoptimised model's on
# the reference kernels) and clear errors for corrupt ONNX and plan files.
# Usage: engine_test.sh path/to/larserve path/to/python path/to/engine_compare
set -u
LARSERVE="$1"
PYTHON="$2"
COMPARE="$3"
SRC="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
source "$(dirname "$0")/lib.sh"

"$PYTHON" "$SRC/python/make_test_models.py" "$WORK" || { echo "FAIL: cannot generate the test model"; exit 1; }
MODEL="$WORK/emtrkmichel_random.onnx"

if "$LARSERVE" build "$MODEL" -o "$WORK/m.plan" --json >"$WORK/build.json" 2>"$WORK/err" &&
  grep -q '"nodes_after": 8' "$WORK/build.json"; then
  ok "build: 17 nodes optimised to 8"
else
  bad "build: $(cat "$WORK/err") $(head -c 300 "$WORK/build.json")"
fi
# Without --backend, build (and exec of an ONNX file) use the cpu backend when this build has it,
# as serve does; a build without oneDNN falls back to the reference backend.
if "$LARSERVE" build "$MODEL" -o "$WORK/probe.plan" --backend cpu >/dev/null 2>&1; then
  want=cpu
else
  want=reference
fi
if grep -q "\"backend\": \"$want\"" "$WORK/build.json" &&
  "$LARSERVE" exec "$MODEL" --batch 2 --seconds 0.05 --warmup 0 2>/dev/null | grep -q "backend $want,"; then
  ok "build and exec default to the $want backend"
else
  bad "build and exec default: expected backend $want; build: $(grep -o '"backend": "[a-z]*"' "$WORK/build.json" | sort -u | tr '\n' ' ')"
fi
if "$LARSERVE" exec "$WORK/m.plan" --batch 2 --seconds 0.05 --warmup 0 --json >"$WORK/exec.json" 2>"$WORK/err" &&
  grep -q '"throughput_inferences_per_s"' "$WORK/exec.json"; then
  ok "exec plan"
else
  bad "exec plan: $(cat "$WORK/err")"
fi
if "$COMPARE" "$MODEL" "$WORK/m.plan" >"$WORK/cmp" 2>&1; then
  ok "plan outputs equal the unoptimised model's ($(tail -1 "$WORK/cmp"))"
else
  bad "plan vs model: $(cat "$WORK/cmp")"
fi

# Batch profile: OPT is exec's default, batches outside [MIN, MAX] are refused.
if "$LARSERVE" build "$MODEL" -o "$WORK/p.plan" --backend cpu --batch 1:4:8 >/dev/null 2>"$WORK/err" &&
  "$LARSERVE" exec "$WORK/p.plan" --seconds 0.05 --warmup 0 --json 2>>"$WORK/err" | grep -q '"batch": 4'; then
  ok "batch profile: exec runs OPT"
else
  bad "batch profile: $(cat "$WORK/err")"
fi
expect_error "batch outside the profile" "outside the plan's profile" "$LARSERVE" exec "$WORK/p.plan" --batch 16 --seconds 0.01
expect_error "inconsistent batch profile" "MIN <= OPT <= MAX" "$LARSERVE" build "$MODEL" -o "$WORK/x.plan" --batch 8:4:1

# Tactics: timed at OPT with a profile, then taken from the timing cache; a damaged cache is
# refused with its path.
if "$LARSERVE" build "$MODEL" -o "$WORK/t.plan" --device cpu --batch 1:4:8 --threads 1 \
     --timing-cache "$WORK/t.cache" >"$WORK/t1" 2>"$WORK/err" && grep -q "(timed)" "$WORK/t1" &&
   "$LARSERVE" build "$MODEL" -o "$WORK/t2.plan" --device cpu --batch 1:4:8 --threads 1 \
     --timing-cache "$WORK/t.cache" >"$WORK/t2" 2>>"$WORK/err" && grep -q "(timing cache)" "$WORK/t2" &&
   ! grep -q "(timed)" "$WORK/t2" &&
   "$LARSERVE" exec "$WORK/t2.plan" --seconds 0.05 --warmup 0 >/dev/null 2>>"$WORK/err"; then
  ok "tactics timed at OPT, then reused from the timing cache"
else
  bad "timing cache: $(cat "$WORK/err" "$WORK/t1" "$WORK/t2" | head -c 600)"
fi
sed -i 's/"ms":/"ms" :/' "$WORK/t.cache"
expect_error "corrupt timing cache" "timing cache .*corrupt" "$LARSERVE" build "$MODEL" -o "$WORK/x.plan" --device cpu --batch 1:4:8 --timing-cache "$WORK/t.cache"
expect_error "--device cuda without a CUDA backend" "no CUDA backend" "$LARSERVE" build "$MODEL" -o "$WORK/x.plan" --device cuda
# A plan whose tactics were timed on another CPU is refused (header edited, checksum redone).
"$PYTHON" - "$WORK/t.plan" "$WORK/other.plan" <<'PY'
import json, struct, sys, zlib
b = open(sys.argv[1], "rb").read()
hlen = struct.unpack_from("<I", b, 12)[0]
h = json.loads(b[16:16 + hlen])
h["device_description"] = "cpu oneDNN 0.0.0 avx2 Some Other CPU"
hdr = json.dumps(h).encode()
rest = b[16 + hlen:-4]
plen = struct.unpack_from("<Q", rest, 0)[0]
payload = rest[8:8 + plen]
out = b[:12] + struct.pack("<I", len(hdr)) + hdr + rest[:8] + payload
out += struct.pack("<I", zlib.crc32(payload, zlib.crc32(hdr)) & 0xffffffff)
open(sys.argv[2], "wb").write(out)
PY
expect_error "plan tuned on another CPU" "Some Other CPU.*rebuild" "$LARSERVE" exec "$WORK/other.plan" --seconds 0.01

# INT8: calibrate from .npy batches, write the cache, rebuild from the cache alone.
"$PYTHON" -c "
import numpy as np
for i in range(2):
    np.save('$WORK/calib%d.npy' % i, (np.random.default_rng(i).uniform(-10, 30, size=(8, 48, 48, 1)) / 30).astype(np.float32))
"
if "$LARSERVE" build "$MODEL" -o "$WORK/m8.plan" --backend cpu --precision int8 --calib "$WORK/calib0.npy" \
  "$WORK/calib1.npy" --calib-cache "$WORK/m.calib" >/dev/null 2>"$WORK/err" &&
  head -1 "$WORK/m.calib" | grep -q "larserve-calibration 1" &&
  "$LARSERVE" build "$MODEL" -o "$WORK/m8b.plan" --backend cpu --precision int8 --calib-cache "$WORK/m.calib" \
    >/dev/null 2>>"$WORK/err" &&
  "$LARSERVE" exec "$WORK/m8b.plan" --batch 2 --seconds 0.05 --warmup 0 >/dev/null 2>>"$WORK/err"; then
  ok "int8 build with calibration, cache written and reused, plan runs"
else
  bad "int8 calibration: $(cat "$WORK/err")"
fi
expect_error "int8 without calibration" "needs calibration" "$LARSERVE" build "$MODEL" -o "$WORK/x.plan" --precision int8 --backend cpu
sed -i 's/0x1/0x2/' "$WORK/m.calib"
expect_error "corrupt calibration cache" "corrupt|checksum" "$LARSERVE" build "$MODEL" -o "$WORK/x.plan" --precision int8 --backend cpu --calib-cache "$WORK/m.calib"

# Bad files.
head -c 3000 /dev/urandom >"$WORK/random.onnx"
expect_error "random bytes as ONNX" "cannot be parsed|not an ONNX" "$LARSERVE" build "$WORK/random.onnx" -o "$WORK/x.plan"
head -c 100000 "$MODEL" >"$WORK/trunc.onnx"
expect_error "truncated ONNX" "cannot be parsed|truncated|checker" "$LARSERVE" build "$WORK/trunc.onnx" -o "$WORK/x.plan"
size=$(stat -c %s "$WORK/m.plan")
head -c $((size / 2)) "$WORK/m.plan" >"$WORK/trunc.plan"
expect_error "truncated plan" "truncated|rebuild" "$LARSERVE" exec "$WORK/trunc.plan" --seconds 0.01
cp "$WORK/m.plan" "$WORK/flip.plan"
printf '\xff\xfe' | dd of="$WORK/flip.plan" bs=1 seek=$((size / 2)) conv=notrunc status=none
expect_error "corrupt plan" "corrupt|checksum" "$LARSERVE" exec "$WORK/flip.plan" --seconds 0.01
cp "$WORK/m.plan" "$WORK/version.plan"
printf '\x63' | dd of="$WORK/version.plan" bs=1 seek=8 conv=notrunc status=none
expect_error "plan from another format version" "plan format 99|rebuild" "$LARSERVE" exec "$WORK/version.plan" --seconds 0.01
expect_error "unknown backend" "unknown backend" "$LARSERVE" build "$MODEL" -o "$WORK/x.plan" --backend tpu
expect_error "unknown precision" "unknown precision" "$LARSERVE" build "$MODEL" -o "$WORK/x.plan" --precision fp8
expect_error "missing model" "cannot open" "$LARSERVE" exec "$WORK/none.onnx"

finish
