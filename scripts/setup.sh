#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine (README "Set up"):
#   scripts/setup.sh demo   install what is missing, build, run the main job
#   scripts/setup.sh test   install what is missing, build, run every test
# Installs Debian packages with apt (as root, or through sudo), makes the Python venv
# (.venv, with Debian's site packages visible), pip-installs python/requirements.txt into it and
# puts NVIDIA's perf_analyzer in it (.venv/bin/perf_analyzer).
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
  libb64-0d
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

# --- 3. NVIDIA's perf_analyzer (load tests and bench/server_bench.py) -----------------------
# PyPI's perf-analyzer is a 0.1.0 placeholder without the binary. NVIDIA ships perf_analyzer,
# unmodified, inside the tritonclient wheels up to 2.51 (data/bin/perf_analyzer); those of 2.52
# and later need glibc 2.38 (Debian 12 has 2.36). So the 2.51.0 wheel is downloaded (not
# installed: the venv keeps the current tritonclient Python package), only the binary is taken
# out to .venv/libexec, and the wrapper .venv/bin/perf_analyzer runs it with libcudart.so.12 from
# the venv's nvidia-cuda-runtime-cu12 (python/requirements.txt); libb64.so.0d is apt's libb64-0d.
PA_VERSION=2.51.0
PA_SHA256_X86_64=c485bb0123bdf310f90bc8b03d3489b28df2ffed55b30c7eee0b795b48113d52
install_perf_analyzer() {
  local exe=.venv/libexec/perf_analyzer wrapper=.venv/bin/perf_analyzer cache=.venv/cache
  if [[ -x "$exe" && -x "$wrapper" ]] && "$wrapper" --version >/dev/null 2>&1; then return 0; fi
  echo "[setup] installing perf_analyzer $PA_VERSION (from NVIDIA's tritonclient $PA_VERSION wheel)"
  mkdir -p "$cache" .venv/libexec
  local req="$cache/tritonclient-$PA_VERSION.txt" hashes=()
  if [[ "$(uname -m)" == "x86_64" ]]; then
    echo "tritonclient==$PA_VERSION --hash=sha256:$PA_SHA256_X86_64" >"$req"
    hashes=(--require-hashes)
  else
    echo "tritonclient==$PA_VERSION" >"$req"
  fi
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: "${hashes[@]}" -r "$req" -d "$cache"
  # The wrapper finds libcudart's folder relative to the venv, so the checkout may move.
  local cudart
  cudart="$(.venv/bin/python - "$cache" "$PA_VERSION" "$exe" <<'PY'
import glob, importlib.util, os, shutil, sys, zipfile
cache, version, exe = sys.argv[1:]
wheel, = glob.glob(os.path.join(cache, f"tritonclient-{version}-*.whl"))
with zipfile.ZipFile(wheel) as z, z.open(f"tritonclient-{version}.data/data/bin/perf_analyzer") as src:
    with open(exe + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
os.chmod(exe + ".part", 0o755)
os.replace(exe + ".part", exe)
spec = importlib.util.find_spec("nvidia.cuda_runtime")
lib = os.path.join(list(spec.submodule_search_locations)[0], "lib")
assert os.path.exists(os.path.join(lib, "libcudart.so.12")), lib
print(os.path.relpath(lib, ".venv"))
PY
)"
  cat >"$wrapper" <<WRAP
#!/usr/bin/env bash
# NVIDIA's perf_analyzer $PA_VERSION, unmodified (tritonclient wheel), installed by scripts/setup.sh.
venv="\$(cd "\$(dirname "\$(readlink -f "\$0")")/.." && pwd)"
LD_LIBRARY_PATH="\$venv/$cudart\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "\$venv/libexec/perf_analyzer" "\$@"
WRAP
  chmod +x "$wrapper"
  "$wrapper" --version >/dev/null 2>&1 || { echo "[setup] perf_analyzer does not run: see $wrapper" >&2; exit 1; }
}
install_perf_analyzer

# --- 4. Build -------------------------------------------------------------------------------
cmake --preset cpu-release -DLARSERVE_PYTHON="$PWD/.venv/bin/python" >/dev/null
cmake --build --preset cpu-release -j "$JOBS"
LARSERVE=build/cpu-release/src/apps/larserve

# --- 5. Run ---------------------------------------------------------------------------------
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
echo "[demo] (three events are a small sample with few shower hits: the shower row above mostly reflects Michel"
echo "[demo]  hits (counted em) and delta-ray hits called em; the held-out sample's numbers are in docs/physics/performance.md)"
