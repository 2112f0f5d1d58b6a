#!/bin/bash
# device: gRPC's bare round trips (bench/grpc_pingpong), callback API against completion queues,
# unary and streaming, 4 rounds (issue 5: is a completion-queue ModelStreamInfer worth it?).
tar xf out/device/bundle.tar.xz -C /tmp
for r in 1 2 3 4; do
  for s in callback cq; do
    echo "round $r server $s: $(LD_LIBRARY_PATH=/tmp/bundle/lib timeout 30 out/device/grpc_pingpong --seconds 3 --server $s | tr '\n' ' ')"
  done
done | tee $OUT/pingpong_stream.txt
