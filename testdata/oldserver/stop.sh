#!/usr/bin/env bash
# Stop the Dovecot (or Cyrus) + Postfix test server started by start.sh.
#
#   stop.sh [--purge] STATE_DIR
#
# Only the master processes recorded in STATE_DIR's own pid files (and the
# start.sh watchdog) are signalled; their children exit with them.
# --purge then deletes STATE_DIR (all mail).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
require_root

purge=0
if [ "${1:-}" = "--purge" ]; then purge=1; shift; fi
[ $# -eq 1 ] || die "usage: $0 [--purge] STATE_DIR"
STATE="$1"
[ -d "$STATE" ] || exit 0
# refuse to purge something that is not a state dir of ours
[ -f "$STATE/etc/dovecot.conf" ] || [ -f "$STATE/etc/imapd.conf" ] || [ "$purge" = 0 ] || [ -z "$(ls -A "$STATE")" ] \
    || die "$STATE does not look like a start.sh state dir; not purging"

# the watchdog is a session leader (setsid): its pid is its process group
stop_pidfile "$STATE/run/watchdog.pid" bash 5 group

# Both at once: each waits for its own children, which takes a while.
stop_pidfile "$STATE/postfix-spool/pid/master.pid" master 15 &
stop_pidfile "$STATE/run/master.pid" dovecot 15 &
stop_pidfile "$STATE/run/cyrus-master.pid" master 15 &
wait

if [ "$purge" = 1 ]; then
    rm -rf "$STATE"
fi
