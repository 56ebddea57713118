#!/usr/bin/env bash
# Runs every Go fuzz target in the module for $FUZZTIME each (10s in
# `make test`, longer in `make fuzz`). Targets are found, not listed, so a new
# Fuzz function is picked up without editing this file.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-10s}
status=0
while IFS=: read -r file fn; do
	pkg=./$(dirname "$file")
	echo "fuzz $pkg $fn ($FUZZTIME)"
	if ! go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$FUZZTIME" "$pkg"; then
		status=1
	fi
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . | sed 's/func //' | sort -u)
exit $status
