#!/usr/bin/env bash
# Simulation speed benchmark: prints a table and writes JSON (default docs/perf/sim.json).
#   bench/sim_bench.sh [path/to/larserve] [output.json]
# Cases: the default event (1 APA, 6000 ticks) on one core (pinned with taskset), and the full
# 6-APA ProtoDUNE-SP event with 2 threads. Wall time includes writing the HDF5 file.
set -euo pipefail
LARSERVE="${1:-build/cpu-release/src/apps/larserve}"
OUT_JSON="${2:-docs/perf/sim.json}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
cores="$(nproc)"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

# run NAME CPUS THREADS APAS EVENTS: one timed `larserve sim` run.
rows=()
run() {
  local name="$1" cpus="$2" threads="$3" apas="$4" events="$5"
  local pin=()
  [[ "$cpus" != "all" ]] && pin=(taskset -c "$cpus")
  /usr/bin/time -f "%e %M" -o "$WORK/time" "${pin[@]}" "$LARSERVE" sim --events "$events" --seed 1 \
    --apas "$apas" --threads "$threads" -o "$WORK/ev.h5" --json >"$WORK/summary.json"
  read -r wall rss_kb <"$WORK/time"
  local per_event
  per_event=$(awk -v w="$wall" -v n="$events" 'BEGIN { printf "%.3f", w / n }')
  local mb=$(( $(stat -c %s "$WORK/ev.h5") / 1000000 ))
  printf "%-28s %5s %7s %5s %6s %10s %12s %10s %8s\n" "$name" "$cpus" "$threads" "$apas" "$events" "$wall" "$per_event" "$((rss_kb / 1024))" "$mb"
  rows+=("{\"case\": \"$name\", \"cpus\": \"$cpus\", \"threads\": $threads, \"apas\": $apas, \"events\": $events, \"wall_s\": $wall, \"s_per_event\": $per_event, \"peak_rss_mb\": $((rss_kb / 1024)), \"file_mb\": $mb}")
}

echo "larserve sim benchmark  commit $commit  CPU: $cpu ($cores cores)"
printf "%-28s %5s %7s %5s %6s %10s %12s %10s %8s\n" case cpus threads apas events wall_s s_per_event rss_mb file_mb
run "1apa-single-event-1core" 0 1 1 1
run "1apa-10-events-1core" 0 1 1 10
run "6apa-single-event-2threads" all 2 6 1
run "6apa-4-events-2threads" all 2 6 4

mkdir -p "$(dirname "$OUT_JSON")"
{
  echo "{"
  echo "  \"benchmark\": \"sim\","
  echo "  \"commit\": \"$commit\","
  echo "  \"cpu\": \"$cpu\","
  echo "  \"cores\": $cores,"
  echo "  \"command\": \"bench/sim_bench.sh $LARSERVE $OUT_JSON\","
  echo "  \"results\": ["
  for i in "${!rows[@]}"; do
    sep=","
    [[ $i -eq $((${#rows[@]} - 1)) ]] && sep=""
    echo "    ${rows[$i]}$sep"
  done
  echo "  ]"
  echo "}"
} >"$OUT_JSON"
echo "wrote $OUT_JSON"
