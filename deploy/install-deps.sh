#!/usr/bin/env bash
# install-deps.sh installs what the tests need beyond Go and Go modules:
# make, a C compiler (go test -race needs cgo), redis-server and redis-cli
# (the cluster tests create a Redis Cluster with it; NATS is embedded). It
# installs nothing that is already there. Tests run their own redis-server
# on a random port, so the package's own service on 6379 is kept from
# starting where possible.
set -euo pipefail

missing=()
command -v make >/dev/null 2>&1 || missing+=(make)
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: installing ${missing[*]}" >&2
	# A policy-rc.d that exits 101 tells invoke-rc.d and deb-systemd-invoke
	# not to start services, so the postinst leaves 6379 alone. Only add one
	# if none exists, and remove it afterwards.
	policy=/usr/sbin/policy-rc.d
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		trap 'rm -f "$policy"' EXIT
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	for bin in make gcc redis-server redis-cli; do
		command -v "$bin" >/dev/null 2>&1 || {
			echo "install-deps: $bin still not on PATH after apt-get install" >&2
			exit 1
		}
	done
	exit 0
fi

echo "missing: ${missing[*]}. Install the Debian packages: sudo apt-get install -y ${missing[*]}" >&2
exit 1
