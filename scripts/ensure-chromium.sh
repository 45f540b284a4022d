#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests when it is missing and we may (root, apt-get).
# Without it the browser test is skipped with a reason, never silently passed.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> Installing chromium for the browser tests (apt-get)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/tmp/flywheel-apt.log 2>&1 \
    || echo "chromium could not be installed (see /tmp/flywheel-apt.log); the browser test will be skipped"
else
  echo "chromium is not installed and this is not root: the browser test will be skipped"
fi
exit 0
