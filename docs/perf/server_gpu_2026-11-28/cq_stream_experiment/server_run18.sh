#!/bin/bash
# device: server benchmark 18 (issue 5): ModelInfer and ModelStreamInfer on completion queues (the bundle larserve)
# against the callback API (out/device/exp/larserve_base, 3e90eb4: ModelInfer on queues, streams on the callback API), alternating: one-patch
# latency over unary and streaming gRPC (6 rounds), then batch-256 throughput over streaming gRPC.
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
for r in 1 2 3 4 5 6; do
  timeout 50 $B --larserve /tmp/bundle/base.sh --commit 3e90eb4 --protocols grpc,grpc-stream --batches 1 --concurrency 1 --out $O/lat_base_r$r.json > $O/lat_base_r$r.txt 2>&1
  timeout 50 $B --larserve /tmp/bundle/larserve.sh --commit "$C" --protocols grpc,grpc-stream --batches 1 --concurrency 1 --out $O/lat_cqs_r$r.json > $O/lat_cqs_r$r.txt 2>&1
done
for v in base cq; do
  L=/tmp/bundle/larserve.sh; c="$C"; [[ $v == base ]] && L=/tmp/bundle/base.sh && c=3e90eb4
  timeout 110 $B --larserve $L --commit "$c" --protocols grpc-stream --batches 256 --concurrency 8,16,64 --out $O/thr18_$v.json > $O/thr18_$v.txt 2>&1
done
tar -C /tmp -cJf $OUT/run18.tar.xz o
for f in $O/lat_*.txt; do echo "$f $(grep -E 'added latency' $f | sed 's/added latency, one patch, //' | tr '\n' ' ')"; done
for f in $O/thr18_*.txt; do echo "== $f"; grep -E "^grpc-stream " $f | cut -c1-140; grep "batch   256" $f; done
