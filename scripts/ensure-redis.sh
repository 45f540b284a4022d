#!/usr/bin/env bash
# Installs Debian's Redis server for the shared-limit and scale-out tests when it is missing and we
# may (root, apt-get). Without it those tests are skipped with a reason, never silently passed.
set -u
command -v redis-server >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> Installing Redis for the scale-out tests (apt-get)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/tmp/flywheel-apt-redis.log 2>&1 \
    || echo "redis-server could not be installed (see /tmp/flywheel-apt-redis.log); its tests will be skipped"
  # Debian's package starts a system-wide server on :6379; the tests start their own on free ports
  (command -v systemctl >/dev/null 2>&1 && systemctl disable --now redis-server) >/dev/null 2>&1 || true
  pkill -x redis-server >/dev/null 2>&1 || true
else
  echo "Redis is not installed and this is not root: its tests will be skipped"
fi
exit 0
