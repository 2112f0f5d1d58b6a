#!/bin/bash
# device: server benchmark 14 (issue 5): gRPC's own round-trip floor (bench/grpc_pingpong, callback
# API, completion queue blocking and polled) and batch-256 throughput with the cores accounted.
tar xf out/device/bundle.tar.xz -C /tmp
O=/tmp/o; mkdir -p $O
C=$(cat /tmp/bundle/COMMIT)
for r in 1 2 3; do
  for s in callback cq cq-spin; do
    m=unary; [[ $s == callback ]] && m=both
    echo "round $r server $s: $(LD_LIBRARY_PATH=/tmp/bundle/lib timeout 30 out/device/grpc_pingpong --seconds 3 --mode $m --server $s | tr '\n' ' ')" | tee -a $O/pingpong.txt
  done
done
nproc >> $O/pingpong.txt
P=/opt/torch/.venv/bin/python
timeout 480 $P bench/server_bench.py --larserve /tmp/bundle/larserve.sh --perf-analyzer /tmp/bundle/perf_analyzer.sh \
  --commit $C --exec-seconds 3 --threads 0 --window-ms 2000 --max-trials 6 --protocols grpc,grpc-stream,http \
  --batches 256 --concurrency 8,16,64 --rounds 2 --out $O/throughput_cores.json > $O/throughput_cores.txt 2>&1
tar -C /tmp -cJf $OUT/run14.tar.xz o
sed -n '/^threads/,$p' $O/throughput_cores.txt | cut -c1-170
