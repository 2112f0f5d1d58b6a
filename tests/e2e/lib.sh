# Shared helpers of the end-to-end shell tests. Source it after setting WORK (a scratch dir).
pass=0
fail=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fail=$((fail + 1)); }

# expect_error NAME PATTERN CMD...: the command must exit 1-127 (an error, not a signal) and
# print PATTERN (extended regex, case-insensitive) on stderr.
expect_error() {
  local name="$1" pattern="$2"
  shift 2
  "$@" >"$WORK/out" 2>"$WORK/err"
  local rc=$?
  if [[ $rc -ge 1 && $rc -lt 128 ]] && grep -qiE "$pattern" "$WORK/err"; then
    ok "$name"
  else
    bad "$name (exit $rc): $(head -c 400 "$WORK/err")"
  fi
}

# finish: the summary line and the exit status.
finish() {
  echo "$pass passed, $fail failed"
  [[ $fail -eq 0 ]]
}
