#!/usr/bin/env bash
# One suite of the BEAM version matrix, run by tests/matrix/run.sh inside the suite's root
# (or on the host): every test executable listed in LIST, then Microsoft's DAP test client.
# Lines starting with `matrix-` are read back by run.sh.
#
#   suite.sh REPO TARGET LIST TIMEOUT
set -u
REPO=$1 TARGET=$2 LIST=$3 TIMEOUT=$4
trap 'exit 130' INT TERM

otp=$(erl -noshell -eval 'io:put_chars(erlang:system_info(otp_release)), halt().')
ex=$(elixir -e 'IO.write(System.version())')
echo "matrix-versions: otp=$otp elixir=$ex"

# As `cargo test` runs them: from the package directory, one executable after another.
cd "$REPO/server"
while IFS= read -r -u 3 exe; do
  echo "matrix-run: $exe"
  timeout --kill-after=10 "$TIMEOUT" "$exe" --test-threads=4 </dev/null
  echo "matrix-exit: $? $exe"
done 3<"$LIST"

cd "$REPO/tests/dap-testsupport"
if [ -d node_modules ] && command -v node >/dev/null; then
  echo "matrix-run: dap-testsupport"
  ORRERY=$TARGET/release/orrery timeout --kill-after=10 "$TIMEOUT" \
    node --test --test-reporter=spec test/debugger.test.js </dev/null
  echo "matrix-exit: $? dap-testsupport"
else
  echo "matrix-skip: dap-testsupport (no Node.js or its packages here)"
fi
