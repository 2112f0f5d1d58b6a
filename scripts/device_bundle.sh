#!/usr/bin/env bash
# Packs the larserve binary with the shared libraries the GPU machine lacks (Debian's oneDNN,
# ONNX, protobuf, HDF5 and their dependencies) into out/device/bundle.tar.xz, for the device
# tool's `carry`. On the device: tar xf out/device/bundle.tar.xz -C /tmp && /tmp/bundle/larserve.sh ...
# The C and C++ runtimes are not packed: the device's (Ubuntu 24.04) are newer and compatible.
# With NVIDIA's perf_analyzer installed by scripts/setup.sh (.venv/libexec), the bundle carries it
# too, with libb64.so.0d and libcudart.so.12 in a folder of its own (pa-lib, so that they never
# shadow the device's CUDA for larserve): /tmp/bundle/perf_analyzer.sh ..., e.g.
#   /opt/torch/.venv/bin/python bench/server_bench.py --larserve /tmp/bundle/larserve.sh \
#       --perf-analyzer /tmp/bundle/perf_analyzer.sh
# bundle/COMMIT names the commit the bundle was built from (the device copy may lack git history).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-build/cpu-release/src/apps/larserve}"
OUT="${BUNDLE_OUT:-out/device/bundle.tar.xz}"  # another path leaves the shared bundle alone
PA=.venv/libexec/perf_analyzer
STAGE="$(mktemp -d)/bundle"
mkdir -p "$STAGE/lib" "$(dirname "$OUT")"
cp "$BIN" "$STAGE/larserve"
ldd "$BIN" | awk '/=> \// {print $3}' | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libstdc++.so*|libgcc_s.so*|ld-linux*|libpthread.so*|libdl.so*|librt.so*) ;;
    *) cp -L "$lib" "$STAGE/lib/" ;;
  esac
done
cat >"$STAGE/larserve.sh" <<'WRAP'
#!/usr/bin/env bash
here="$(cd "$(dirname "$0")" && pwd)"
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/larserve" "$@"
WRAP
chmod +x "$STAGE/larserve.sh"

if [[ -x "$PA" ]]; then
  mkdir -p "$STAGE/pa-lib"
  cp "$PA" "$STAGE/perf_analyzer"
  # libcudart.so.12 from the venv (nvidia-cuda-runtime-cu12), the rest as ldd finds them.
  cudart="$(.venv/bin/python -c 'import os, nvidia.cuda_runtime as m; print(os.path.join(list(m.__path__)[0], "lib"))')"
  LD_LIBRARY_PATH="$cudart" ldd "$PA" | awk '/=> \// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libb64.so*|libcudart.so*) cp -L "$lib" "$STAGE/pa-lib/" ;;
    esac
  done
  for need in libb64.so.0d libcudart.so.12; do
    [[ -f "$STAGE/pa-lib/$need" ]] || { echo "device_bundle: $need not found for $PA" >&2; exit 1; }
  done
  cat >"$STAGE/perf_analyzer.sh" <<'WRAP'
#!/usr/bin/env bash
# NVIDIA's perf_analyzer 2.51.0, unmodified (tritonclient wheel; scripts/setup.sh).
here="$(cd "$(dirname "$0")" && pwd)"
LD_LIBRARY_PATH="$here/pa-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/perf_analyzer" "$@"
WRAP
  chmod +x "$STAGE/perf_analyzer.sh"
else
  echo "device_bundle: no $PA (scripts/setup.sh installs it): the bundle has no perf_analyzer" >&2
fi
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
[[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]] && commit="$commit (working tree)"
echo "$commit" >"$STAGE/COMMIT"

tar -C "$(dirname "$STAGE")" -cJf "$OUT" bundle
rm -rf "$(dirname "$STAGE")"
ls -la "$OUT"
