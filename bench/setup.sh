#!/usr/bin/env bash
# Installs what `npm run bench` drives, from Debian's packages (run as root, or with sudo):
# HAProxy, nginx with its stream module, iperf3, wrk, and taskset/getconf (usually present).
# The bench itself never installs anything; it tells you to run this script instead.
set -euo pipefail

packages=(haproxy nginx libnginx-mod-stream iperf3 wrk util-linux libc-bin)

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then exec sudo "$0" "$@"; fi
  echo "bench/setup.sh: run as root (apt-get install ${packages[*]})" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${packages[@]}"

# The packages ship system services; the bench starts its own instances on loopback and does
# not need them. Stop them where an init system started them (a no-op in containers).
for svc in haproxy nginx; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done

echo "bench tools installed: $(haproxy -v | head -1); $(nginx -v 2>&1); $(iperf3 --version | head -1); $(wrk --version 2>&1 | head -1)"
