#!/usr/bin/env bash
# Installs Arize Phoenix (a real OTLP receiver with a REST API to read spans back) into its own venv,
# .venvs/phoenix, for the trace-export integration test. Its own venv: Phoenix pins libraries
# (SQLAlchemy, pandas, …) that flywheel's venv must not inherit. ~850 MB, ~2 minutes, once.
set -u
VENV=.venvs/phoenix
PHOENIX_VERSION=20.26.1
if [ -x "$VENV/bin/phoenix" ] && "$VENV/bin/pip" show arize-phoenix 2>/dev/null | grep -q "^Version: $PHOENIX_VERSION$"; then
  exit 0
fi
echo "==> Installing Arize Phoenix $PHOENIX_VERSION into $VENV (for the OTLP export test; once)"
python3 -m venv "$VENV" \
  && "$VENV/bin/pip" install -q --disable-pip-version-check "arize-phoenix==$PHOENIX_VERSION" >/tmp/flywheel-phoenix.log 2>&1 \
  || { echo "Phoenix could not be installed (see /tmp/flywheel-phoenix.log): the OTLP export test fails"; exit 1; }
