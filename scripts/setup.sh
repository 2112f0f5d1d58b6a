#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine (README "Set up"):
#   scripts/setup.sh demo   install what is missing, build, run the main job
#   scripts/setup.sh test   install what is missing, build, run every test
# Installs Debian packages with apt (as root, or through sudo), makes the Python venv
# (.venv, with Debian's site packages visible) and pip-installs python/requirements.txt into it.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-}"
if [[ "$MODE" != "demo" && "$MODE" != "test" ]]; then
  echo "usage: scripts/setup.sh demo|test" >&2
  exit 2
fi
JOBS="$(nproc)"

# --- 1. Debian packages --------------------------------------------------------------------
PACKAGES=(
  build-essential cmake pkg-config git
  libhdf5-dev libcli11-dev nlohmann-json3-dev libpng-dev zlib1g-dev libzstd-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libonnx-dev libonnx-testdata libprotobuf-dev protobuf-compiler libdnnl-dev
  libgrpc++-dev protobuf-compiler-grpc libcpp-httplib-dev
  python3-venv python3-h5py python3-numpy python3-pytest python3-matplotlib python3-onnx
  python3-torch python3-torchvision
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "[setup] installing: ${missing[*]}"
  SUDO=""
  [[ "$(id -u)" != "0" ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- 2. Python venv (training, plots and protocol tests only) -------------------------------
if [[ ! -x .venv/bin/python ]]; then
  echo "[setup] creating .venv"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
if grep -qvE '^\s*(#|$)' python/requirements.txt; then
  .venv/bin/python -m pip install -q -r python/requirements.txt
fi

# --- 3. Build -------------------------------------------------------------------------------
cmake --preset cpu-release -DLARSERVE_PYTHON="$PWD/.venv/bin/python" >/dev/null
cmake --build --preset cpu-release -j "$JOBS"
LARSERVE=build/cpu-release/src/apps/larserve

# --- 4. Run ---------------------------------------------------------------------------------
if [[ "$MODE" == "test" ]]; then
  ctest --preset cpu-release -j "$JOBS"
  exit $?
fi

OUT=out/demo
mkdir -p "$OUT"
echo "[demo] simulating 3 ProtoDUNE-SP events (1 APA: cosmic muons + one beam particle each)"
"$LARSERVE" sim --events 3 --seed 2026 --threads "$JOBS" -o "$OUT/events.h5"
for mode in charge truth; do
  flag=""
  [[ "$mode" == "truth" ]] && flag="--truth"
  "$LARSERVE" display "$OUT/events.h5" --event 0 --plane W $flag -o "$OUT/event0_W_$mode.png"
done
echo "[demo] starting larserve serve (model repository models/, CPU, loopback, free ports)"
"$LARSERVE" serve --model-repository models --grpc-port 0 --http-port 0 --metrics-port 0 \
  >"$OUT/serve.out" 2>"$OUT/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
for _ in $(seq 1 600); do
  grep -q "gRPC listening" "$OUT/serve.out" 2>/dev/null && break
  kill -0 $SERVER 2>/dev/null || { cat "$OUT/serve.log"; echo "[demo] the server did not start"; exit 1; }
  sleep 0.1
done
GRPC="$(grep -o 'gRPC listening on [0-9.]*:[0-9]*' "$OUT/serve.out" | awk '{print $4}')"
echo "[demo] classifying every hit through the server at $GRPC (KServe v2 gRPC)"
"$LARSERVE" reco "$OUT/events.h5" --server "$GRPC" --threads "$JOBS" -o "$OUT/results.h5"
kill $SERVER
wait $SERVER 2>/dev/null || true
trap - EXIT
echo "[demo] done: open $OUT/event0_W_charge.png and $OUT/event0_W_truth.png; per-hit scores in $OUT/results.h5"
