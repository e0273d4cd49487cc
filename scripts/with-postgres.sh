#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster and RPACS_TEST_POSTGRES_URL pointing at it.
# The cluster lives in a temporary folder, listens only on a Unix socket, and is removed after.
# Without PostgreSQL's server binaries the command runs anyway and the PostgreSQL tests skip.
set -uo pipefail
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
  echo "with-postgres: no PostgreSQL server installed; PostgreSQL tests will be skipped" >&2
  exec "$@"
fi
dir=$(mktemp -d /tmp/rpacs-pg.XXXXXX)
chmod 755 "$dir"
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$dir"
  as_owner=(runuser -u postgres --)
fi
cleanup() { "${as_owner[@]}" "$pgbin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1; rm -rf "$dir"; }
trap cleanup EXIT
"${as_owner[@]}" "$pgbin/initdb" -D "$dir/data" -A trust -U rpacs --no-sync >/dev/null &&
"${as_owner[@]}" "$pgbin/pg_ctl" -D "$dir/data" -w -l "$dir/log" \
  -o "-k $dir -c listen_addresses='' -c fsync=off -p 55432" start >/dev/null &&
"$pgbin/createdb" -h "$dir" -p 55432 -U rpacs rpacs_test || {
  echo "with-postgres: could not start PostgreSQL (see $dir/log); PostgreSQL tests will be skipped" >&2
  "$@"; exit $?
}
export RPACS_TEST_POSTGRES_URL="postgresql+psycopg://rpacs@/rpacs_test?host=$dir&port=55432"
"$@"
