#!/usr/bin/env bash
# `make bench`: runs every bench/*.sh in turn. Each prints its own figures.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
for b in bench/*.sh; do
	echo "== $b"
	bash "$b"
done
