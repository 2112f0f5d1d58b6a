#!/usr/bin/env bash
# Packs the larserve binary with the shared libraries the GPU machine lacks (Debian's oneDNN,
# ONNX, protobuf, HDF5 and their dependencies) into out/device/bundle.tar.xz, for the device
# tool's `carry`. On the device: tar xf out/device/bundle.tar.xz -C /tmp && /tmp/bundle/larserve.sh ...
# The C and C++ runtimes are not packed: the device's (Ubuntu 24.04) are newer and compatible.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-build/cpu-release/src/apps/larserve}"
STAGE="$(mktemp -d)/bundle"
mkdir -p "$STAGE/lib" out/device
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
tar -C "$(dirname "$STAGE")" -cJf out/device/bundle.tar.xz bundle
ls -la out/device/bundle.tar.xz
