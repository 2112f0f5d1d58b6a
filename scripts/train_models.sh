#!/usr/bin/env bash
# Rebuilds the EmTrackMichelId models from nothing, seeded, and measures them on held-out events:
#
#   1. simulate training events (run seed 1001) and held-out events (run seed 2002, never used
#      in training);
#   2. `larserve patches`: the training set (LArSoft's sampling) as .npy files;
#   3. python/train.py: the production architecture and our compact one (seed 1);
#   4. `larserve reco --local` of the held-out events with each exported model (our engine);
#   5. PyTorch vs our engine on every hit patch of one held-out event (python/check_parity.py,
#      first 4096 patches);
#   6. python/performance.py (tables and plots) when h5py and matplotlib are available.
#
# Usage: scripts/train_models.sh OUTDIR [--train-events N] [--eval-events N] [--epochs E]
#                                [--device auto|cpu|cuda] [--archs production,compact]
#                                [--track-keep F] [--delta-rays track|em|size:E] [-- train.py options]
# --track-keep: fraction of track hits in the training set (0.2, LArSoft's sampling; 1 keeps the
# natural mixture of hits that reconstruction sees).
# --delta-rays: the 3-class label of delta-ray hits, track (the original scheme, default), em, or
# size:E (delta rays below E MeV track, the others em); used for the training set, the held-out
# summary and the performance tables.
# Environment: LARSERVE (default build/cpu-release/src/apps/larserve), PYTHON (default
# .venv/bin/python), THREADS (default: all cores).
# The recorded run (docs/physics/training.md) used the defaults on the GPU machine.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:?usage: scripts/train_models.sh OUTDIR [options]}"
shift
TRAIN_EVENTS=120
EVAL_EVENTS=10
EPOCHS=30
DEVICE=auto
ARCHS=production,compact
TRACK_KEEP=0.2
DELTA_RAYS=track
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --train-events) TRAIN_EVENTS="$2"; shift 2 ;;
    --eval-events) EVAL_EVENTS="$2"; shift 2 ;;
    --epochs) EPOCHS="$2"; shift 2 ;;
    --device) DEVICE="$2"; shift 2 ;;
    --archs) ARCHS="$2"; shift 2 ;;
    --track-keep) TRACK_KEEP="$2"; shift 2 ;;
    --delta-rays) DELTA_RAYS="$2"; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
LARSERVE="${LARSERVE:-$ROOT/build/cpu-release/src/apps/larserve}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
THREADS="${THREADS:-$(nproc)}"
mkdir -p "$OUT"
log() { echo "[$(date +%T)] $*"; }

log "simulating $TRAIN_EVENTS training and $EVAL_EVENTS held-out events ($THREADS threads)"
"$LARSERVE" sim --events "$TRAIN_EVENTS" --seed 1001 --threads "$THREADS" -o "$OUT/train_events.h5" --json \
  >"$OUT/sim_train.json"
"$LARSERVE" sim --events "$EVAL_EVENTS" --seed 2002 --threads "$THREADS" -o "$OUT/eval_events.h5" --json \
  >"$OUT/sim_eval.json"

log "training set"
"$LARSERVE" patches "$OUT/train_events.h5" --npy-dir "$OUT/train_npy" --seed 1 --threads "$THREADS" \
  --track-keep "$TRACK_KEEP" --delta-rays "$DELTA_RAYS" --json \
  >"$OUT/patches_train.json"
# Every hit of the first held-out event, for the PyTorch / engine comparison.
"$LARSERVE" sim --events 1 --seed 2002 -o "$OUT/parity_event.h5" >/dev/null
"$LARSERVE" patches "$OUT/parity_event.h5" --balance none --delta-rays "$DELTA_RAYS" --npy-dir "$OUT/parity_npy" --json \
  >"$OUT/patches_parity.json"

IFS=, read -r -a arch_list <<<"$ARCHS"
for arch in "${arch_list[@]}"; do
  log "training $arch"
  "$PYTHON" "$ROOT/python/train.py" "$OUT/train_npy" --arch "$arch" --epochs "$EPOCHS" --device "$DEVICE" \
    --seed 1 --keep-best --checkpoint "$OUT/$arch.pt" -o "$OUT/$arch.onnx" "${EXTRA[@]}" 2>&1 | tee "$OUT/train_$arch.log"
  log "held-out reconstruction with $arch"
  "$LARSERVE" reco "$OUT/eval_events.h5" --local --model "$OUT/$arch.onnx" --threads "$THREADS" \
    --delta-rays "$DELTA_RAYS" \
    -o "$OUT/results_$arch.h5" --json >"$OUT/reco_$arch.json"
  log "PyTorch vs larserve on $(basename "$OUT/parity_npy") with $arch"
  "$PYTHON" "$ROOT/python/check_parity.py" --arch "$arch" --checkpoint "$OUT/$arch.pt" \
    --model "$OUT/$arch.onnx" --patches "$OUT/parity_npy" --larserve "$LARSERVE" \
    --limit 4096 --json "$OUT/parity_$arch.json"
done

if "$PYTHON" -c "import h5py, matplotlib" 2>/dev/null; then
  files=()
  labels=()
  for arch in "${arch_list[@]}"; do files+=("$OUT/results_$arch.h5"); labels+=("$arch"); done
  "$PYTHON" "$ROOT/python/performance.py" "${files[0]}" --compare "${files[@]:1}" --delta-rays "$DELTA_RAYS" \
    --labels "$(IFS=,; echo "${labels[*]}")" -o "$OUT/performance"
else
  log "no h5py/matplotlib here: run python/performance.py on the results files elsewhere"
fi
log "done: $OUT"
