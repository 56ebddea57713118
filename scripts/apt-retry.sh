#!/usr/bin/env bash
# apt-retry.sh CMD...: runs an apt command, retrying with backoff for up to
# ten minutes: Debian's mirror has outages of several minutes.
set -uo pipefail
deadline=$(( $(date +%s) + 600 ))
delay=5
while :; do
	"$@" && exit 0
	rc=$?
	now=$(date +%s)
	if (( now + delay > deadline )); then
		echo "apt-retry: giving up after 10 minutes: $*" >&2
		exit "$rc"
	fi
	echo "apt-retry: '$*' failed ($rc), retrying in ${delay}s" >&2
	sleep "$delay"
	delay=$(( delay * 2 > 120 ? 120 : delay * 2 ))
done
