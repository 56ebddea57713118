#!/usr/bin/env bash
# demo.sh: `make demo`. Installs what the demo needs on Debian (QEMU, the
# guest's busybox, runit and sshd, the ssh client, Debian's cloud kernel),
# builds notos-agent, then runs internal/demo: a throwaway key, a
# DigitalOcean-style drive from `notos-agent mkdrive`, a QEMU (TCG) boot of
# a runit guest provisioned from it, an ssh login, a shutdown.
# INTERACTIVE=1 leaves the VM running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
here=scripts
step() { printf '==> %s\n' "$*"; }

sudo=
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "demo: run as root or install sudo" >&2; exit 1; }
	sudo=sudo
fi

# Each command the demo runs, and the Debian package that brings it.
declare -A pkg=(
	[qemu-system-x86_64]=qemu-system-x86 [busybox]=busybox-static
	[runit]=runit [runsvdir]=runit [sshd]=openssh-server
	[ssh]=openssh-client [ssh-keygen]=openssh-client
	[mke2fs]=e2fsprogs [depmod]=kmod
)
missing=()
for cmd in "${!pkg[@]}"; do
	PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null || missing+=("${pkg[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	step "installing ${missing[*]} (apt, retried through mirror outages)"
	# The packages are wanted for their binaries (sshd, runsvdir go into
	# the guest): keep apt from starting their services on this machine.
	policy=/usr/sbin/policy-rc.d
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
		$sudo chmod +x "$policy"
		trap '$sudo rm -f "$policy"' EXIT
	fi
	$sudo env DEBIAN_FRONTEND=noninteractive "$here/apt-retry.sh" apt-get update -q
	$sudo env DEBIAN_FRONTEND=noninteractive "$here/apt-retry.sh" \
		apt-get install -y -q --no-install-recommends "${missing[@]}"
	# Removed here: the exec at the end would skip an EXIT trap.
	if [ -n "$(trap -p EXIT)" ]; then
		$sudo rm -f "$policy"
		trap - EXIT
	fi
fi

step "Debian's cloud kernel (scripts/fetch-kernel.sh; cached after the first download)"
"$here/fetch-kernel.sh"

if ! command -v go >/dev/null; then
	echo "demo: needs Go $(sed -n 's/^go //p' go.mod) or later to build notos-agent: https://go.dev/dl/" >&2
	exit 1
fi
step "building notos-agent"
make --no-print-directory build

step "the demo (QEMU TCG: about 30 s on a free core)"
args=()
[ "${INTERACTIVE:-}" = 1 ] && args+=(-interactive)
CGO_ENABLED=0 go build -o bin/notos-demo ./internal/demo
exec bin/notos-demo -agent bin/notos-agent "${args[@]}"
