#!/usr/bin/env bash
# Installs Debian's PostgreSQL server for the PostgreSQL-backed MLflow test when it is missing and we
# may (root, apt-get). Without it that test is skipped with a reason, never silently passed.
set -u
command -v initdb >/dev/null 2>&1 && exit 0
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> Installing PostgreSQL for the PostgreSQL-backed MLflow test (apt-get)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/tmp/flywheel-apt-pg.log 2>&1 \
    || echo "postgresql could not be installed (see /tmp/flywheel-apt-pg.log); its test will be skipped"
else
  echo "PostgreSQL is not installed and this is not root: its test will be skipped"
fi
exit 0
