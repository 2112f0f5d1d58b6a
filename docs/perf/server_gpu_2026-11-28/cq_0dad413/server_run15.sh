#!/bin/bash
# device: server benchmark 15 (issue 5): ModelInfer on completion queues (the bundle's larserve)
# against the callback API (out/device/exp/larserve_base, d7a5cc9), alternating: one-patch
# latency over unary and streaming gRPC, then batch-256 throughput over unary gRPC.
tar xf out/device/bundle.tar.xz -C /tmp
cp out/device/exp/larserve_base /tmp/bundle/larserve_base
cat > /tmp/bundle/base.sh <<'W'
#!/usr/bin/env bash
here="$(cd "$(dirname "$0")" && pwd)"
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/larserve_base" "$@"
W
chmod +x /tmp/bundle/base.sh
P=/opt/torch/.venv/bin/python
C=$(cat /tmp/bundle/COMMIT)
O=/tmp/o; mkdir -p $O
B="$P bench/server_bench.py --perf-analyzer /tmp/bundle/perf_analyzer.sh --exec-seconds 2 --threads 0 --window-ms 1500 --max-trials 5"
for r in 1 2 3 4; do
  timeout 50 $B --larserve /tmp/bundle/base.sh --commit d7a5cc9 --protocols grpc,grpc-stream --batches 1 --concurrency 1 --out $O/lat_base_r$r.json > $O/lat_base_r$r.txt 2>&1
  timeout 50 $B --larserve /tmp/bundle/larserve.sh --commit "$C" --protocols grpc,grpc-stream --batches 1 --concurrency 1 --out $O/lat_cq_r$r.json > $O/lat_cq_r$r.txt 2>&1
done
for v in base cq; do
  L=/tmp/bundle/larserve.sh; c="$C"; [[ $v == base ]] && L=/tmp/bundle/base.sh && c=d7a5cc9
  timeout 110 $B --larserve $L --commit "$c" --protocols grpc --batches 256 --concurrency 8,16,64 --out $O/thr_$v.json > $O/thr_$v.txt 2>&1
done
tar -C /tmp -cJf $OUT/run15.tar.xz o
for f in $O/lat_*.txt; do echo "$f $(grep -E 'added latency' $f | sed 's/added latency, one patch, //' | tr '\n' ' ')"; done
for f in $O/thr_*.txt; do echo "== $f"; grep -E "^grpc  " $f | cut -c1-140; grep "batch   256" $f; done
