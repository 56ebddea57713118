#!/usr/bin/env bash
# fetch-kernel.sh: downloads Debian's cloud kernel package (the one
# linux-image-cloud-amd64 depends on) with `apt-get download` and unpacks it
# into $NOTOS_CACHE/kernel/<version>/ (default ~/.cache/notos-agent). Prints
# that directory. Cached: a second call downloads nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${NOTOS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/notos-agent}
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
if [ -z "$pkg" ]; then
	"$here/apt-retry.sh" apt-get update -q >&2
	pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
fi
[ -n "$pkg" ] || { echo "fetch-kernel: cannot resolve linux-image-cloud-amd64" >&2; exit 1; }
dest=$cache/kernel/$pkg
if [ ! -f "$dest/.complete" ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && "$here/apt-retry.sh" apt-get download -q "$pkg" >&2)
	rm -rf "$dest"
	mkdir -p "$dest"
	dpkg-deb -x "$tmp"/"$pkg"_*.deb "$dest"
	touch "$dest/.complete"
fi
echo "$dest"
