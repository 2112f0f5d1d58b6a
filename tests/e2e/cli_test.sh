#!/usr/bin/env bash
# End-to-end checks of the larserve CLI: the happy path, and clear errors (never a crash) for
# bad options, impossible configs and corrupt files. Usage: cli_test.sh path/to/larserve
set -u
LARSERVE="$1"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
source "$(dirname "$0")/lib.sh"

# Happy path: simulate, summary as JSON, display both modes.
if "$LARSERVE" sim --events 2 --seed 3 -o "$WORK/ev.h5" --json >"$WORK/sim.json" 2>"$WORK/err" &&
  grep -q '"events": 2' "$WORK/sim.json" && grep -q '"michel"' "$WORK/sim.json"; then
  ok "sim --json"
else
  bad "sim --json: $(cat "$WORK/err")"
fi
if "$LARSERVE" sim --events 2 --seed 3 --threads 2 -o "$WORK/ev2.h5" >/dev/null 2>&1 && cmp -s "$WORK/ev.h5" "$WORK/ev2.h5"; then
  ok "same seed, 1 and 2 threads: identical files"
else
  bad "same seed, 1 and 2 threads: files differ"
fi
for mode in "" "--truth"; do
  if "$LARSERVE" display "$WORK/ev.h5" --event 1 --plane W $mode -o "$WORK/ev$mode.png" >/dev/null 2>"$WORK/err" &&
    [[ "$(head -c 8 "$WORK/ev$mode.png" | od -An -tx1 | tr -d ' \n')" == "89504e470d0a1a0a" ]]; then
    ok "display $mode"
  else
    bad "display $mode: $(cat "$WORK/err")"
  fi
done
"$LARSERVE" --help >/dev/null && "$LARSERVE" sim --help | grep -q -- "--events" && ok "help" || bad "help"

# patches: a training set from the 2 events; every label present in the JSON summary; the
# file does not depend on the thread count.
count() { grep -A4 "\"$2\": {" "$1" | grep -m1 "\"$3\":" | tr -dc '0-9'; }
if "$LARSERVE" patches "$WORK/ev.h5" -o "$WORK/p.h5" --json >"$WORK/patches.json" 2>"$WORK/err" &&
  grep -q '"events": 2' "$WORK/patches.json" &&
  [[ "$(count "$WORK/patches.json" by_label track)" -gt 0 ]] &&
  [[ "$(count "$WORK/patches.json" by_label em)" -gt 0 ]] &&
  [[ "$(count "$WORK/patches.json" by_label none)" -gt 0 ]] &&
  [[ "$(grep -m1 '"empty":' "$WORK/patches.json" | tr -dc '0-9')" -gt 0 ]]; then
  ok "patches --json"
else
  bad "patches --json: $(cat "$WORK/err") $(head -c 600 "$WORK/patches.json")"
fi
if "$LARSERVE" patches "$WORK/ev.h5" -o "$WORK/p2.h5" --threads 3 >"$WORK/out" 2>&1 && cmp -s "$WORK/p.h5" "$WORK/p2.h5" &&
  grep -q "total" "$WORK/out"; then
  ok "patches: same seed, 1 and 3 threads: identical files"
else
  bad "patches: 1 and 3 threads differ: $(cat "$WORK/out")"
fi
if "$LARSERVE" patches "$WORK/ev.h5" -o "$WORK/pe.h5" --balance none --planes W --json >"$WORK/pe.json" 2>"$WORK/err" &&
  [[ "$(grep -m1 '"patches":' "$WORK/pe.json" | tr -dc '0-9')" -eq "$(count "$WORK/pe.json" hits W)" ]] &&
  ! grep -q '"U":' "$WORK/pe.json"; then
  ok "patches --balance none --planes W: one patch per hit"
else
  bad "patches --balance none: $(cat "$WORK/err") $(head -c 600 "$WORK/pe.json")"
fi

# --delta-rays size:5: the scheme is recorded in the selection (and the file's attribute).
if "$LARSERVE" patches "$WORK/ev.h5" -o "$WORK/ps.h5" --delta-rays size:5 --json >"$WORK/ps.json" 2>"$WORK/err" &&
  grep -q '"delta_rays": "size:5"' "$WORK/ps.json"; then
  ok "patches --delta-rays size:5"
else
  bad "patches --delta-rays size:5: $(cat "$WORK/err") $(head -c 600 "$WORK/ps.json")"
fi

# Bad options and values.
expect_error "unknown option" "not expected|unknown|--frobnicate" "$LARSERVE" sim --frobnicate -o "$WORK/x.h5"
expect_error "unknown command" "frobnicate|not expected|subcommand" "$LARSERVE" frobnicate
expect_error "events out of range" "events" "$LARSERVE" sim --events 0 -o "$WORK/x.h5"
expect_error "missing output" "output" "$LARSERVE" sim --events 1
echo '{"argon": {"electron_lifetime_ms": -3}}' >"$WORK/neg.json"
expect_error "impossible config value" "argon.electron_lifetime_ms" "$LARSERVE" sim --config "$WORK/neg.json" -o "$WORK/x.h5"
echo '{"argon": {"lifetime": 3}}' >"$WORK/unk.json"
expect_error "unknown config key" "argon.lifetime" "$LARSERVE" sim --config "$WORK/unk.json" -o "$WORK/x.h5"
echo '{"argon": ' >"$WORK/broken.json"
expect_error "broken config JSON" "JSON" "$LARSERVE" sim --config "$WORK/broken.json" -o "$WORK/x.h5"
expect_error "odd APA count" "apas" "$LARSERVE" sim --apas 5 -o "$WORK/x.h5"
expect_error "unwritable output" "cannot create" "$LARSERVE" sim -o "$WORK/no/such/dir/x.h5"

# Bad files.
expect_error "missing file" "does not exist" "$LARSERVE" display "$WORK/none.h5" -o "$WORK/x.png"
head -c 5000 /dev/urandom >"$WORK/random.h5"
expect_error "random bytes" "not an HDF5 file" "$LARSERVE" display "$WORK/random.h5" -o "$WORK/x.png"
size=$(stat -c %s "$WORK/ev.h5")
for frac in 10 50 90; do
  head -c $((size * frac / 100)) "$WORK/ev.h5" >"$WORK/trunc.h5"
  expect_error "truncated file ($frac%)" "truncated|corrupt|cannot|missing" "$LARSERVE" display "$WORK/trunc.h5" --event 1 -o "$WORK/x.png"
done
expect_error "event out of range" "holds 2 events" "$LARSERVE" display "$WORK/ev.h5" --event 5 -o "$WORK/x.png"
expect_error "bad plane" "plane" "$LARSERVE" display "$WORK/ev.h5" --plane X -o "$WORK/x.png"
expect_error "bad window" "channel|window|range" "$LARSERVE" display "$WORK/ev.h5" --channels 900:2000 -o "$WORK/x.png"
expect_error "bad window syntax" "LO:HI" "$LARSERVE" display "$WORK/ev.h5" --ticks 5-9 -o "$WORK/x.png"

# patches: bad files and options.
expect_error "patches: missing file" "does not exist" "$LARSERVE" patches "$WORK/none.h5" -o "$WORK/x.h5"
expect_error "patches: random bytes" "not an HDF5 file" "$LARSERVE" patches "$WORK/random.h5" -o "$WORK/x.h5"
head -c $((size / 2)) "$WORK/ev.h5" >"$WORK/trunc.h5"
expect_error "patches: truncated events file" "truncated|corrupt|cannot|missing" "$LARSERVE" patches "$WORK/trunc.h5" -o "$WORK/x.h5"
expect_error "patches: a patch file as input" "not a larserve events file" "$LARSERVE" patches "$WORK/p.h5" -o "$WORK/x.h5"
expect_error "patches: unwritable output" "cannot create" "$LARSERVE" patches "$WORK/ev.h5" -o "$WORK/no/such/dir/x.h5"
expect_error "patches: output is the input" "is the input" "$LARSERVE" patches "$WORK/ev.h5" -o "$WORK/ev.h5"
expect_error "patches: bad plane" "unknown plane" "$LARSERVE" patches "$WORK/ev.h5" --planes W,X -o "$WORK/x.h5"
expect_error "patches: bad track keep" "track keep" "$LARSERVE" patches "$WORK/ev.h5" --track-keep 1.5 -o "$WORK/x.h5"
expect_error "patches: balance none with sampling" "cannot be combined" "$LARSERVE" patches "$WORK/ev.h5" --balance none --track-keep 0.5 -o "$WORK/x.h5"
expect_error "patches: bad balance" "balance" "$LARSERVE" patches "$WORK/ev.h5" --balance half -o "$WORK/x.h5"
for v in size: size:-1 size:abc foo; do
  expect_error "patches: --delta-rays $v" "delta-ray scheme '$v'" "$LARSERVE" patches "$WORK/ev.h5" --delta-rays "$v" -o "$WORK/x.h5"
done

finish
