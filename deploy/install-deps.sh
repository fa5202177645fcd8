#!/usr/bin/env bash
# install-deps.sh installs what the tests need beyond Go modules: the
# redis-server binary (NATS is embedded). It does nothing when redis-server
# is already on PATH. Tests run their own redis-server on a random port, so
# the package's own service on 6379 is kept from starting where possible.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
	exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: installing redis-server" >&2
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
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
	command -v redis-server >/dev/null 2>&1 || {
		echo "install-deps: redis-server still not on PATH after apt-get install" >&2
		exit 1
	}
	exit 0
fi

echo "redis-server is missing: install the Debian package redis-server (sudo apt-get install -y redis-server)" >&2
exit 1
