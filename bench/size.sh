#!/usr/bin/env bash
# Size check (run by `make bench`): the binary must stay a static
# executable of at most 6 MiB (issue 2). Prints its size, the limit and
# what file(1) says of it; exits 1 when it is over the limit or not
# statically linked.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${NOTOS_AGENT_BIN:-bin/notos-agent}
LIMIT=$((6 * 1024 * 1024))

[ -f "$BIN" ] || { echo "bench/size.sh: $BIN missing (make build)"; exit 1; }
size=$(stat -c%s "$BIN")
awk -v s="$size" 'BEGIN { printf "size:  %d bytes (%.2f MiB)\n", s, s / 1048576 }'
printf 'limit: %d bytes (6 MiB)\n' "$LIMIT"
fail=0
if command -v file >/dev/null; then
	desc=$(file -b "$BIN")
	echo "file:  $desc"
	case "$desc" in
	*"statically linked"*) ;;
	*) echo "bench/size.sh: $BIN is not statically linked"; fail=1 ;;
	esac
else
	echo "file:  (file(1) not installed: linkage not checked)"
fi
if [ "$size" -gt "$LIMIT" ]; then
	echo "bench/size.sh: $BIN is $((size - LIMIT)) bytes over the limit"
	fail=1
fi
exit $fail
