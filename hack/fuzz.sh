#!/usr/bin/env bash
# Runs every fuzz target (func FuzzX in a _test.go file) for FUZZTIME each.
#
# Go 1.26's fuzz coordinator can end a run that found nothing with
# "context deadline exceeded" when -fuzztime runs out while a worker is busy
# (golang/go#75804, fixed in Go 1.27). A real failure always names its
# input: it writes a reproducer under testdata/fuzz/<target>/, or reports a
# failing seed entry. So a run that failed with only that line, and wrote no
# reproducer, is reported as the coordinator's race and not as a failure.
set -uo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
cd "$(dirname "$0")/.."

status=0
for pkg in $(git grep -l '^func Fuzz' -- '*_test.go' | xargs -r -n1 dirname | sort -u); do
	for target in $($GO test -list '^Fuzz' "./$pkg" | grep '^Fuzz'); do
		echo "fuzz ./$pkg $target ($FUZZTIME)"
		corpus="$pkg/testdata/fuzz/$target"
		before=$(ls "$corpus" 2>/dev/null | sort)
		out=$(mktemp)
		$GO test -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZTIME" "./$pkg" 2>&1 | tee "$out"
		rc=${PIPESTATUS[0]}
		after=$(ls "$corpus" 2>/dev/null | sort)
		if [ "$rc" -ne 0 ]; then
			# The failure's own lines: those between "--- FAIL" and the final FAIL.
			reason=$(sed -n "/^--- FAIL: $target /,/^FAIL\$/p" "$out" | sed '1d;$d' | sed 's/^[[:space:]]*//' | grep -v '^$')
			if [ "$reason" = "context deadline exceeded" ] && [ "$before" = "$after" ] &&
				! grep -q 'Failing input written to' "$out"; then
				echo "fuzz ./$pkg $target: ended by Go's fuzz coordinator deadline race (golang/go#75804) with no failing input; not a failure"
			else
				echo "fuzz ./$pkg $target: FAILED"
				status=1
			fi
		fi
		rm -f "$out"
	done
done
exit $status
