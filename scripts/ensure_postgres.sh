#!/usr/bin/env sh
# PostgreSQL's server binaries (initdb, pg_ctl, postgres) for the tests' throwaway servers.
# Found on PATH or in Debian's /usr/lib/postgresql/<version>/bin; otherwise installed with apt
# where that is possible (root, or passwordless sudo), else a clear instruction and failure.
set -eu
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
        exit 0
    elif sudo -n true 2>/dev/null; then
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
        exit 0
    fi
fi
echo "PostgreSQL's server binaries (initdb, pg_ctl) are needed by the tests:" >&2
echo "install them (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql)" >&2
exit 1
