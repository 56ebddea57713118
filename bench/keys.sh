#!/usr/bin/env bash
# Benchmark (run by `make bench`, not a timed test): how long installing the
# SSH keys from a config drive takes, as a whole process, on the
# DigitalOcean layout (agent/testdata/do-drive made into an ISO by
# `genisoimage -J -r -V config-2`, as OpenStack does).
#
#   notos-agent keys --drive IMAGE --root TMP
#       fresh:  TMP/etc removed before each run, so the key file, its
#               directory and etc/hostname are created every time
#       tmpfs:  fresh, with TMP on /dev/shm: fsync is free there, so this
#               is the process's own cost without the disk's flush latency
#       rerun:  the files are already right (the common case at boot)
#   seed:  isoinfo -R -x /openstack/latest/meta_data.json | jq -r
#          '.public_keys."0"' > file, then cp into authorized_keys.d (the
#          seed's mount + jq + copy, with isoinfo instead of a mount, which
#          this host's kernel cannot do for iso9660). hyperfine subtracts
#          the shell's own start-up, as the seed runs inside runit's shell.
#          It reads one key, checks nothing and sets no hostname.
#
# Each command runs RUNS times (default 30) after 3 warm-up runs; the
# figures are median, min and max wall time. Target: notos-agent keys at
# most 20 ms; the binary a static executable of at most 6 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
BIN=$(realpath "${NOTOS_AGENT_BIN:-bin/notos-agent}")
export PATH=$PATH:/usr/sbin:/sbin

for c in hyperfine genisoimage isoinfo jq file; do
	command -v $c >/dev/null || { echo "bench/keys.sh: needs $c: skipped"; exit 0; }
done
[ -x "$BIN" ] || { echo "bench/keys.sh: $BIN missing (make build)"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
img=$tmp/config-2.iso
genisoimage -quiet -J -r -V config-2 -o "$img" agent/testdata/do-drive
mkdir -p "$tmp/root" "$tmp/seed/etc/ssh/authorized_keys.d"

# Each command is checked once before it is timed: a benchmark of a
# command that fails would measure nothing.
"$BIN" keys --drive "$img" --root "$tmp/root" 2>/dev/null | grep -q '2 keys installed' ||
	{ echo "bench/keys.sh: notos-agent keys did not install the keys"; exit 1; }
seed="isoinfo -R -i $img -x /openstack/latest/meta_data.json | jq -r '.public_keys.\"0\"' > $tmp/seed/key && cp $tmp/seed/key $tmp/seed/etc/ssh/authorized_keys.d/root"
sh -c "$seed"
grep -q '^ssh-' "$tmp/seed/etc/ssh/authorized_keys.d/root" ||
	{ echo "bench/keys.sh: the seed's pipeline wrote no key"; exit 1; }

hyperfine --style basic --runs "$RUNS" --warmup 3 -N --export-json "$tmp/fresh.json" \
	--prepare "rm -rf $tmp/root/etc" \
	--command-name "notos-agent keys (fresh)" "$BIN keys --drive $img --root $tmp/root" >/dev/null
# The same on a tmpfs root, where fsync costs nothing: what the process
# itself costs, apart from the disk's flush latency.
shm=$(mktemp -d -p /dev/shm)
trap 'rm -rf "$tmp" "$shm"' EXIT
hyperfine --style basic --runs "$RUNS" --warmup 3 -N --export-json "$tmp/tmpfs.json" \
	--prepare "rm -rf $shm/etc" \
	--command-name "notos-agent keys (fresh, tmpfs)" "$BIN keys --drive $img --root $shm" >/dev/null
hyperfine --style basic --runs "$RUNS" --warmup 3 -N --export-json "$tmp/rerun.json" \
	--command-name "notos-agent keys (rerun)" "$BIN keys --drive $img --root $tmp/root" >/dev/null
hyperfine --style basic --runs "$RUNS" --warmup 3 --export-json "$tmp/seed.json" \
	--command-name "seed: isoinfo + jq + cp" "$seed" >/dev/null

echo "keys on the DigitalOcean layout, $RUNS runs each (ms):"
printf '  %-32s %8s %8s %8s\n' command median min max
for f in fresh tmpfs rerun seed; do
	jq -r '.results[] | [.command, .median*1000, .min*1000, .max*1000] | @tsv' "$tmp/$f.json" |
		while IFS=$'\t' read -r name med min max; do
			printf '  %-32s %8.2f %8.2f %8.2f\n' "$name" "$med" "$min" "$max"
		done
done
median=$(jq '.results[0].median*1000' "$tmp/fresh.json")
awk -v m="$median" 'BEGIN { printf "  target: notos-agent keys median <= 20 ms: %s\n", (m <= 20 ? "met" : "MISSED") }'

size=$(stat -c%s "$BIN")
kind=$(file -b "$BIN")
case "$kind" in
*"statically linked"* | *"static-pie linked"*) static=yes ;;
*) static=no ;;
esac
printf 'binary: %s, %d bytes (%.2f MiB), static: %s\n' "$BIN" "$size" "$(echo "$size/1048576" | bc -l)" $static
if [ "$size" -le $((6 * 1024 * 1024)) ] && [ $static = yes ]; then
	echo "  target: static, <= 6 MiB: met"
else
	echo "  target: static, <= 6 MiB: MISSED"
fi
