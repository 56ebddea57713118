#!/usr/bin/env bash
# Benchmark (run by `make bench`, not a timed test): how long each DHCP
# client takes, from process start to the link configured (address,
# default route and resolv.conf written), against the same dnsmasq.
#
#   notos-agent net --iface eth0 --net dhcp --root R
#                                            (resolv.conf under R/etc; DHCP
#                                             only, as the others: no look
#                                             for a config drive)
#   dhclient -1 -4                          (Debian's dhclient-script)
#   udhcpc -n -q -f                          (Debian's default.script:
#                                             busybox ifconfig, ip route,
#                                             resolv.conf)
#   dhcpcd -1 -4 -w                          (its hooks; it ARP-probes the
#                                             offered address first)
#
# Each run is a fresh DORA: the address and routes are flushed, resolv.conf
# emptied and every client's lease file removed before it starts. Clients
# alternate run by run. The wall time of each process is measured (a client
# that forks, like dhclient, is timed until its foreground process exits,
# which it does once the script has configured the link), and each run is
# checked: a run that did not configure the link counts as a failure.
#
# Nothing reaches the host: the clients run in a private network namespace,
# in a private mount namespace where /etc is a copy and /var/lib/dhcp,
# /var/lib/dhcpcd and /run are empty tmpfs.
#
# RUNS (default 20) runs per client; SKIP_DHCPCD=1 leaves out dhcpcd, whose
# ARP probe makes each run take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
BIN=$(realpath "${NOTOS_AGENT_BIN:-bin/notos-agent}")
export PATH=$PATH:/usr/sbin:/sbin

if [ "$(id -u)" != 0 ]; then echo "bench/net.sh: needs root (network namespaces): skipped"; exit 0; fi
for c in ip dnsmasq; do
	command -v $c >/dev/null || { echo "bench/net.sh: needs $c: skipped"; exit 0; }
done
[ -x "$BIN" ] || { echo "bench/net.sh: $BIN missing (make build)"; exit 1; }

id=$$
S=nb-$id-s
C=nb-$id
T=$(mktemp -d /tmp/notos-bench-net.XXXXXX)
cleanup() {
	[ -f "$T/dnsmasq.pid" ] && kill "$(cat "$T/dnsmasq.pid")" 2>/dev/null || true
	ip netns del $C 2>/dev/null || true
	ip netns del $S 2>/dev/null || true
	rm -rf "/etc/netns/$C" "/etc/netns/$S" "$T"
}
trap cleanup EXIT
for n in $S $C; do
	mkdir -p /etc/netns/$n
	echo "# private to $n" >/etc/netns/$n/resolv.conf
	ip netns add $n
	ip -n $n link set lo up
done
ip -n $C link add eth0 type veth peer name srv0 netns $S
ip -n $S addr add 10.78.0.1/24 dev srv0
ip -n $S link set srv0 up
ip -n $C link set eth0 up

ip netns exec $S dnsmasq --no-daemon --no-ping --conf-file=/dev/null --port=0 \
	--interface=srv0 --bind-interfaces --log-facility="$T/dnsmasq.log" \
	--dhcp-range=10.78.0.10,10.78.0.200,255.255.255.0,1h \
	--dhcp-option=3,10.78.0.1 --dhcp-option=6,10.78.0.53 --dhcp-option=119,bench.example \
	--dhcp-leasefile="$T/dnsmasq.leases" --pid-file= --user=root >"$T/dnsmasq.out" 2>&1 &
echo $! >"$T/dnsmasq.pid"

cat >"$T/inner.sh" <<'INNER'
set -euo pipefail
T=$1 BIN=$2 RUNS=$3 SKIP_DHCPCD=$4
mkdir -p "$T/etc" "$T/root/etc" "$T/root/run"
cp -a /etc/. "$T/etc/"
mount --bind "$T/etc" /etc
# Lease files go to tmpfs for every client, as /run is at boot.
for d in /var/lib/dhcp /var/lib/dhcpcd /run "$T/root/run"; do [ -d $d ] && mount -t tmpfs tmpfs $d; done

clients=(notos-agent)
command -v dhclient >/dev/null && clients+=(dhclient)
command -v udhcpc >/dev/null && clients+=(udhcpc)
[ "$SKIP_DHCPCD" != 1 ] && command -v dhcpcd >/dev/null && clients+=(dhcpcd)

reset() {
	ip addr flush dev eth0
	ip route flush dev eth0 2>/dev/null || true
	echo "# empty" >/etc/resolv.conf
	echo "# empty" >"$T/root/etc/resolv.conf"
	rm -rf /var/lib/dhcp/* /var/lib/dhcpcd/* "$T/root/run/"*
}
run() {
	case $1 in
	notos-agent) "$BIN" net --iface eth0 --net dhcp --root "$T/root" --timeout 10s >/dev/null 2>"$T/err" ;;
	dhclient) dhclient -1 -4 -lf /var/lib/dhcp/leases -pf /run/dhclient.pid eth0 2>"$T/err" ;;
	udhcpc) udhcpc -i eth0 -n -q -f >"$T/err" 2>&1 ;;
	dhcpcd) dhcpcd -1 -4 -w eth0 >"$T/err" 2>&1 ;;
	esac
}
configured() {
	local conf=/etc/resolv.conf
	[ "$1" = notos-agent ] && conf=$T/root/etc/resolv.conf
	ip -4 addr show dev eth0 | grep -q 'inet 10\.78\.0\.' &&
		ip -4 route show default | grep -q 'via 10.78.0.1' &&
		grep -q 'nameserver 10.78.0.53' "$conf"
}
for ((i = 0; i < RUNS; i++)); do
	for c in "${clients[@]}"; do
		reset
		t0=$EPOCHREALTIME
		rc=0
		run $c || rc=$?
		t1=$EPOCHREALTIME
		ok=1
		if [ $rc != 0 ] || ! configured $c; then
			ok=0
			echo "run $i $c failed (exit $rc):" >&2
			cat "$T/err" >&2
		fi
		[ -f /run/dhclient.pid ] && { kill "$(cat /run/dhclient.pid)" 2>/dev/null || true; rm -f /run/dhclient.pid; }
		echo "$c $t0 $t1 $ok"
	done
done
INNER

echo "RUNS=$RUNS per client, alternating; times from process start to exit with the link configured"
ip netns exec $C bash "$T/inner.sh" "$T" "$BIN" "$RUNS" "${SKIP_DHCPCD:-0}" >"$T/times"
awk '
{ ms = ($3 - $2) * 1000; if ($4 == 1) { t[$1] = t[$1] " " ms; n[$1]++ } else fail[$1]++; seen[$1] = 1 }
END {
	printf "%-12s %5s %9s %9s %9s %6s\n", "client", "runs", "median", "min", "max", "failed"
	for (c in seen) {
		k = split(t[c], v, " ")
		for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
		med = (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
		printf "%-12s %5d %7.2fms %7.2fms %7.2fms %6d\n", c, k, med, v[1], v[k], fail[c] + 0
		m[c] = med
	}
	if (m["dhclient"] > 0 && m["notos-agent"] > 0)
		printf "notos-agent median / dhclient median = %.2f (target <= 0.50)\n", m["notos-agent"] / m["dhclient"]
}' "$T/times"
