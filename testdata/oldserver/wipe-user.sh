#!/usr/bin/env bash
# Empty users' mail on a running start.sh server (all folders and messages)
# and close their IMAP sessions.
#
#   wipe-user.sh STATE_DIR bob@example.test [carol@example.test ...]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
require_root
[ $# -ge 2 ] || die "usage: $0 STATE_DIR user@example.test..."
STATE="$1"; shift
CONF="$STATE/etc/dovecot.conf"
for u in "$@"; do
    case "$u" in */*|*..*|''|*[!A-Za-z0-9@._+-]*) die "bad user name: $u" ;; esac
    grep -q "^$u:" "$STATE/etc/users.passwd" || die "unknown user $u"
    home="$STATE/mail/${u#*@}/${u%@*}"
    if pid_running "$STATE/run/master.pid" dovecot; then
        doveadm -c "$CONF" kick "$u" >/dev/null 2>&1 || true
    fi
    rm -rf "$home"
done
