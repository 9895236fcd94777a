#!/usr/bin/env bash
# Start a throw-away Dovecot (IMAP + LMTP) + Postfix (SMTP) "old mail server"
# on 127.0.0.1, for Mailferry's tests (package core/oldserver/oldtest) and by hand.
# With IMAP_SERVER=cyrus, Cyrus IMAP 3.6 takes Dovecot's place (see cyrus.sh).
#
#   start.sh STATE_DIR
#
# Everything (config, TLS cert, Maildirs, Postfix queue, logs, pid files,
# unix sockets) is written under STATE_DIR; nothing in /etc is edited (the one
# system-wide change is the "vmail" system user owning the Maildirs).  No
# systemd/init: the daemons are started directly and stop.sh stops them by the
# PIDs in their own pid files.  Must run as root.  STATE_DIR must be short
# (unix socket paths are limited to 108 bytes) and is made mode 0755.
#
# Environment (ports are required; all listen on 127.0.0.1 only):
#   IMAP_PORT      IMAP, plaintext LOGIN/PLAIN allowed, STARTTLS offered
#   IMAPS_PORT     IMAP over implicit TLS (self-signed cert)
#   POP3_PORT      POP3 (optional; needs dovecot-pop3d), USER/PASS allowed
#                  without TLS, STLS offered; Dovecot's default UIDLs
#   SMTP_PORT      SMTP, no auth needed from 127.0.0.0/8 (empty: no Postfix)
#   SMTPS_PORT     SMTP over implicit TLS (optional; empty: not opened)
#   USERS_FILE     "address:password" per line (# comments); addresses
#                  must be in DOMAIN.  Default: users.txt next to this script.
#   MASTER_USERS_FILE  "name:password" per line: Dovecot master users
#                  (log in as "user@example.test*name", or AUTHENTICATE PLAIN
#                  with authzid=user, authcid=name).  Default: master-users.txt.
#   DOVECOT_SEP    hierarchy separator: "/" (default) or "."
#   MAIL_FSYNC     Dovecot mail_fsync: optimized (default) | never | always
#   MAX_USERIP     Dovecot mail_max_userip_connections (default 200)
#   IMAP_PREFORK   imap (post-login) processes Dovecot keeps forked ahead
#                  (process_min_avail; default 10).  Logins are served in
#                  Dovecot's high-performance login mode, see dovecot.conf.
#   IMAP_SERVER    dovecot (default) or cyrus: Cyrus IMAP + LMTP from the
#                  packages unpacked in CYRUS_ROOT (cyrus.sh; the separator is
#                  DOVECOT_SEP all the same; master users log in only by
#                  AUTHENTICATE PLAIN with an authzid; Postfix offers no AUTH)
#   WATCH_PID      if set, a watchdog stops the daemons (and deletes
#                  STATE_DIR if WATCH_PURGE=1) once that process is gone, so
#                  a crashed test binary leaves nothing running.
#
# Mail for DOMAIN (example.test) is delivered by Postfix over LMTP (a unix
# socket) into Dovecot; mail for any other domain is rewritten to
# catchall+<user>=<domain>@example.test, so nothing leaves the machine.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
require_root

[ $# -eq 1 ] || die "usage: $0 STATE_DIR"
STATE="$1"
case "$STATE" in /*) ;; *) STATE="$(pwd)/$STATE" ;; esac

: "${IMAP_PORT:?IMAP_PORT is required}"
: "${IMAPS_PORT:?IMAPS_PORT is required}"
SMTP_PORT="${SMTP_PORT:-}"
POP3_PORT="${POP3_PORT:-}"
SMTPS_PORT="${SMTPS_PORT:-}"
USERS_FILE="${USERS_FILE:-$HERE/users.txt}"
MASTER_USERS_FILE="${MASTER_USERS_FILE:-$HERE/master-users.txt}"
DOVECOT_SEP="${DOVECOT_SEP:-/}"
MAIL_FSYNC="${MAIL_FSYNC:-optimized}"
MAX_USERIP="${MAX_USERIP:-200}"
IMAP_PREFORK="${IMAP_PREFORK:-10}"
case "$IMAP_PREFORK" in ''|*[!0-9]*) die "IMAP_PREFORK must be a number" ;; esac
# imap-login processes kept waiting: one per core (Dovecot's advice for its
# high-performance login mode), at most 4 for a test server
LOGIN_PROCS="$(nproc 2>/dev/null || echo 2)"
[ "$LOGIN_PROCS" -le 4 ] 2>/dev/null || LOGIN_PROCS=4
case "$MAX_USERIP" in ''|*[!0-9]*) die "MAX_USERIP must be a number" ;; esac
IMAP_SERVER="${IMAP_SERVER:-dovecot}"
DOMAIN=example.test

case "$IMAP_SERVER" in dovecot|cyrus) ;; *) die "IMAP_SERVER must be dovecot or cyrus" ;; esac
case "$DOVECOT_SEP" in /|.) ;; *) die "DOVECOT_SEP must be / or ." ;; esac
case "$MAIL_FSYNC" in optimized|never|always) ;; *) die "MAIL_FSYNC must be optimized, never or always" ;; esac
for p in "$IMAP_PORT" "$IMAPS_PORT" $SMTP_PORT $SMTPS_PORT $POP3_PORT; do
    case "$p" in ''|*[!0-9]*) die "bad port: $p" ;; esac
done
[ -r "$USERS_FILE" ] || die "cannot read USERS_FILE $USERS_FILE"
need openssl
[ "$IMAP_SERVER" = cyrus ] || need dovecot doveadm
[ -z "$SMTP_PORT" ] || need postfix postconf

ETC="$STATE/etc"; PFETC="$STATE/postfix-etc"; PFSPOOL="$STATE/postfix-spool"
PFDATA="$STATE/postfix-data"; RUN="$STATE/run"; LIB="$STATE/lib"
MAIL="$STATE/mail"; LOGS="$STATE/log"; TLS="$STATE/tls"

# unix sockets are limited to 108 bytes: keep base_dir short enough
[ "${#RUN}" -lt 70 ] || die "state path too long for unix sockets: $RUN"

ensure_system_user vmail
mkdir -p "$STATE" "$ETC" "$RUN" "$LIB" "$MAIL" "$LOGS" "$TLS"
chmod 755 "$STATE" "$ETC" "$LOGS" "$TLS"
chown vmail:vmail "$MAIL"
make_self_signed_cert "$TLS"

# ------------------------------------------------------------- user files
passwd="$ETC/users.passwd.new"; vmbox="$ETC/vmailbox.new"; : > "$passwd"; : > "$vmbox"
while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in ''|'#'*) continue ;; esac
    user="${line%%:*}"; pass="${line#*:}"
    [ "$user" != "$line" ] && [ -n "$user" ] || die "bad line in $USERS_FILE (want address:password)"
    case "$user" in *@"$DOMAIN") ;; *) die "user $user is not in $DOMAIN" ;; esac
    case "$user" in *[!A-Za-z0-9@._+-]*) die "user $user has characters the fixture does not support" ;; esac
    printf '%s:{PLAIN}%s::::::\n' "$user" "$pass" >> "$passwd"
    printf '%s OK\n' "$user" >> "$vmbox"
done < "$USERS_FILE"
masters="$ETC/masters.passwd.new"; : > "$masters"
if [ -r "$MASTER_USERS_FILE" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in ''|'#'*) continue ;; esac
        printf '%s:{PLAIN}%s\n' "${line%%:*}" "${line#*:}" >> "$masters"
    done < "$MASTER_USERS_FILE"
fi
mv "$passwd" "$ETC/users.passwd"; mv "$masters" "$ETC/masters.passwd"
chmod 600 "$ETC/users.passwd" "$ETC/masters.passwd"

if [ "$IMAP_SERVER" = cyrus ]; then
    # shellcheck source=cyrus.sh
    . "$HERE/cyrus.sh"
else
chown root:dovecot "$ETC/users.passwd" "$ETC/masters.passwd"
chmod 640 "$ETC/users.passwd" "$ETC/masters.passwd"
LMTP_SOCKET="$RUN/lmtp-postfix"

ssl_dh=""
[ -r /usr/share/dovecot/dh.pem ] && ssl_dh="ssl_dh = </usr/share/dovecot/dh.pem"

# --------------------------------------------------------------- dovecot
PROTOCOLS="imap lmtp"
POP3_CONF=""
if [ -n "$POP3_PORT" ]; then
    [ -x /usr/lib/dovecot/pop3 ] || die "POP3_PORT set but /usr/lib/dovecot/pop3 is missing (apt-get install dovecot-pop3d)"
    PROTOCOLS="imap pop3 lmtp"
    POP3_CONF="
service pop3-login {
  # the high-performance login mode, as for imap-login below
  service_count = 0
  inet_listener pop3 {
    address = 127.0.0.1
    port = $POP3_PORT
  }
  inet_listener pop3s {
    port = 0
  }
}
protocol pop3 {
  mail_max_userip_connections = 200
}"
fi
cat > "$ETC/dovecot.conf" <<EOF
# Generated by $HERE/start.sh -- edit start.sh, not this file.
# Self-contained: does not include /etc/dovecot/conf.d.
instance_name = mailferry-oldtest-$(basename "$STATE")
base_dir = $RUN
state_dir = $LIB
protocols = $PROTOCOLS
listen = 127.0.0.1
log_path = $LOGS/dovecot.log
info_log_path = $LOGS/dovecot.log
log_timestamp = "%Y-%m-%d %H:%M:%S "
auth_verbose = yes
auth_verbose_passwords = no

ssl = yes
ssl_cert = <$TLS/cert.pem
ssl_key = <$TLS/key.pem
$ssl_dh
# loopback test server: allow LOGIN/PLAIN without TLS
disable_plaintext_auth = no
auth_mechanisms = plain login
# "alice" alone logs in as alice@$DOMAIN
auth_default_realm = $DOMAIN
auth_master_user_separator = *
# user+detail@example.test is delivered to user's INBOX
recipient_delimiter = +
# no penalty delay after failed logins (tests try wrong passwords on purpose)
auth_failure_delay = 0

passdb {
  driver = passwd-file
  master = yes
  # auth_default_realm appends @example.test to the master name: match on %n
  args = scheme=PLAIN username_format=%n $ETC/masters.passwd
  result_success = continue
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $ETC/users.passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $ETC/users.passwd
  default_fields = uid=vmail gid=vmail home=$MAIL/%d/%n
}

first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_fsync = $MAIL_FSYNC
# migration tools open many parallel sessions (MAX_USERIP: a test of a
# server that allows fewer)
mail_max_userip_connections = $MAX_USERIP

# the special-use folders exist (and are subscribed) for every user, as on
# a real server that has been used by a mail client
namespace inbox {
  inbox = yes
  separator = $DOVECOT_SEP
  prefix =
  mailbox Sent {
    special_use = \\Sent
    auto = subscribe
  }
  mailbox Drafts {
    special_use = \\Drafts
    auto = subscribe
  }
  mailbox Trash {
    special_use = \\Trash
    auto = subscribe
  }
  mailbox Junk {
    special_use = \\Junk
    auto = subscribe
  }
  mailbox Archive {
    special_use = \\Archive
    auto = subscribe
  }
}

protocol imap {
  mail_max_userip_connections = $MAX_USERIP
}
protocol lmtp {
  postmaster_address = postmaster@$DOMAIN
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }
  # Dovecot's documented high-performance login mode, as a site that
  # serves a morning burst of logins runs it: long-lived login processes
  # (service_count = 0), each serving up to client_limit connections, at
  # least one per CPU core waiting ahead (process_min_avail). The default
  # high-security mode spawns one imap-login process per connection, and
  # Dovecot's master spawns them one after another (each must have started
  # and taken its connection before the next is forked), so 50 logins at
  # once were answered only after seconds.
  service_count = 0
  process_min_avail = $LOGIN_PROCS
  client_limit = 1000
  process_limit = 256
  vsz_limit = 1G
}
service imap {
  # one imap process per session (client_limit 1, service_count 1, as
  # Dovecot recommends for mail processes), IMAP_PREFORK of them forked
  # ahead (master refills the pool up to 10 at a time) so that a burst's
  # sessions find processes ready instead of waiting for each fork in turn
  process_min_avail = $IMAP_PREFORK
  process_limit = 256
}
service lmtp {
  # Postfix delivers here (absolute path: no TCP port needed)
  unix_listener lmtp-postfix {
    mode = 0666
  }
}
service anvil {
  # no auth penalty (seconds of delay for a user's logins after a wrong
  # password from the same IP): tests try wrong passwords on purpose
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service auth {
  # Postfix smtpd asks Dovecot to check SMTP AUTH passwords
  unix_listener auth-postfix {
    mode = 0666
  }
}
$POP3_CONF
EOF

if pid_running "$RUN/master.pid" dovecot; then
    log "dovecot already running (pid $(cat "$RUN/master.pid")), reloading"
    doveadm -c "$ETC/dovecot.conf" reload </dev/null
else
    # detach stdio: a daemon holding our stdout would block the caller
    dovecot -c "$ETC/dovecot.conf" </dev/null >>"$LOGS/dovecot-stderr.log" 2>&1 \
        || die "dovecot failed to start: $(tail -n 5 "$LOGS/dovecot-stderr.log" "$LOGS/dovecot.log" 2>/dev/null)"
    # An open port is this Dovecot's: its master exits (above) when a
    # listener cannot bind, e.g. to a port another process took between the
    # caller's choice and the bind (unlike Cyrus's, see cyrus.sh), and the
    # caller tries other ports (oldtest's TestDovecotPortTaken).
    wait_port 127.0.0.1 "$IMAP_PORT" 20 \
        || die "dovecot did not open $IMAP_PORT: $(tail -n 5 "$LOGS/dovecot.log" 2>/dev/null)"
    wait_port 127.0.0.1 "$IMAPS_PORT" 20 || die "dovecot did not open $IMAPS_PORT"
    [ -z "$POP3_PORT" ] || wait_port 127.0.0.1 "$POP3_PORT" 20 || die "dovecot did not open POP3 $POP3_PORT"
fi

fi # dovecot

# --------------------------------------------------------------- postfix
if [ -n "$SMTP_PORT" ]; then
    mkdir -p "$PFETC" "$PFSPOOL" "$PFDATA"
    chown postfix:postfix "$PFDATA"
    mv "$ETC/vmailbox.new" "$PFETC/vmailbox"

    # Postfix regexp tables are case-insensitive.  Everything not for
    # example.test goes to catchall+<user>=<domain>@example.test: nothing
    # leaves this machine, yet every message can be read back over IMAP.
    cat > "$PFETC/virtual_alias.regexp" <<EOF
# Generated by start.sh
/^(postmaster|abuse|mailer-daemon|root)@(example\\.test)?\$/  catchall@$DOMAIN
if !/@example\\.test\$/
/^(.*)@(.*)\$/  catchall+\$1=\$2@$DOMAIN
endif
EOF

    # An old server from before the SMTP smuggling fixes (CVE-2023-51764;
    # Postfix 3.9, 3.8.5, 3.7.10): bare newlines taken as line ends, stray
    # CRs stored and sent on as they came, so the relay's tests see what
    # Mailferry hands it.
    bare_nl=""
    if postconf -d smtpd_forbid_bare_newline >/dev/null 2>&1; then
        bare_nl="smtpd_forbid_bare_newline = no"
    fi
    if postconf -d cleanup_replace_stray_cr_lf >/dev/null 2>&1; then
        bare_nl="$bare_nl
cleanup_replace_stray_cr_lf = no"
    fi

    cat > "$PFETC/main.cf" <<EOF
# Generated by $HERE/start.sh -- edit start.sh, not this file.
compatibility_level = 3.6
queue_directory = $PFSPOOL
data_directory = $PFDATA
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = $LOGS/postfix.log
maillog_file_prefixes = $LOGS
syslog_name = mailferry-oldtest

myhostname = mail.$DOMAIN
mydomain = $DOMAIN
myorigin = \$mydomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_bind_address = 127.0.0.1
smtp_dns_support_level = disabled
biff = no
append_dot_mydomain = no
smtpd_banner = \$myhostname ESMTP mailferry-oldtest

virtual_mailbox_domains = $DOMAIN
virtual_mailbox_maps = texthash:$PFETC/vmailbox
recipient_delimiter = +
virtual_alias_maps = regexp:$PFETC/virtual_alias.regexp
virtual_alias_domains =
virtual_transport = lmtp:unix:$LMTP_SOCKET
# one LMTP transaction per recipient, so Dovecot adds Delivered-To: to each
lmtp_destination_recipient_limit = 1
local_transport = error:local delivery is disabled in the test server
default_transport = error:the test server never relays off this machine
relay_transport = error:the test server never relays off this machine
relay_domains =

# Accept from loopback without auth; AUTH (checked by Dovecot) is offered.
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_authorized_xforward_hosts = 127.0.0.0/8
$(if [ "$IMAP_SERVER" = dovecot ]; then
    printf 'smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = %s\n' "$RUN/auth-postfix"
else
    echo 'smtpd_sasl_auth_enable = no'
fi)
smtpd_tls_auth_only = no
smtpd_tls_security_level = may
smtpd_tls_cert_file = $TLS/cert.pem
smtpd_tls_key_file = $TLS/key.pem
smtp_tls_security_level = none

# Pass messages through unchanged (apart from Received:).
local_header_rewrite_clients =
always_add_missing_headers = no
message_size_limit = 209715200
hopcount_limit = 1000
alias_maps =
alias_database =
header_size_limit = 1048576
smtputf8_enable = yes
strict_rfc821_envelopes = no
smtpd_helo_required = no
disable_vrfy_command = no
# tests want delivery now, not after a back-off
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 5s
$bare_nl
EOF

    smtps=""
    if [ -n "$SMTPS_PORT" ]; then
        smtps="127.0.0.1:$SMTPS_PORT    inet  n       -      n      -      -       smtpd
  -o syslog_name=mailferry-oldtest/smtps
  -o smtpd_tls_wrappermode=yes"
    fi
    cat > "$PFETC/master.cf" <<EOF
# Generated by start.sh.  Nothing is chrooted (the queue lives under STATE_DIR).
# service                type  private unpriv chroot wakeup maxproc command
127.0.0.1:$SMTP_PORT     inet  n       -      n      -      -       smtpd
$smtps
pickup     unix  n       -       n       60      1       pickup
cleanup    unix  n       -       n       -       0       cleanup
qmgr       unix  n       -       n       300     1       qmgr
tlsmgr     unix  -       -       n       1000?   1       tlsmgr
rewrite    unix  -       -       n       -       -       trivial-rewrite
bounce     unix  -       -       n       -       0       bounce
defer      unix  -       -       n       -       0       bounce
trace      unix  -       -       n       -       0       bounce
verify     unix  -       -       n       -       1       verify
flush      unix  n       -       n       1000?   0       flush
proxymap   unix  -       -       n       -       -       proxymap
proxywrite unix  -       -       n       -       1       proxymap
smtp       unix  -       -       n       -       -       smtp
relay      unix  -       -       n       -       -       smtp
showq      unix  n       -       n       -       -       showq
error      unix  -       -       n       -       -       error
retry      unix  -       -       n       -       -       error
discard    unix  -       -       n       -       -       discard
lmtp       unix  -       -       n       -       -       lmtp
anvil      unix  -       -       n       -       1       anvil
scache     unix  -       -       n       -       1       scache
postlog    unix-dgram n  -       n       -       1       postlogd
EOF

    if pid_running "$PFSPOOL/pid/master.pid" master; then
        postfix -c "$PFETC" reload 2>>"$LOGS/postfix-ctl.log"
    else
        # set-permissions creates/fixes the queue sub-directories
        make_postfix_queue "$PFSPOOL"
        # the master itself ("postfix start" adds ~1.5s of checks); -w: return
        # once it has initialized, or fail (it does when a listener cannot
        # bind: the ports waited for below are then its own)
        /usr/lib/postfix/sbin/master -c "$PFETC" -w </dev/null >>"$LOGS/postfix-ctl.log" 2>&1 \
            || die "postfix failed to start (it exits when a listener cannot bind; ports another process listens on: $(answering 127.0.0.1 "$SMTP_PORT" $SMTPS_PORT)): $(tail -n 5 "$LOGS/postfix-ctl.log" "$LOGS/postfix.log" 2>/dev/null)"
        wait_port 127.0.0.1 "$SMTP_PORT" 20 \
            || die "postfix did not open $SMTP_PORT: $(tail -n 5 "$LOGS/postfix.log" 2>/dev/null)"
        [ -z "$SMTPS_PORT" ] || wait_port 127.0.0.1 "$SMTPS_PORT" 20 \
            || die "postfix did not open $SMTPS_PORT"
    fi
else
    rm -f "$ETC/vmailbox.new"
fi

# ------------------------------------------------------------- watchdog
if [ -n "${WATCH_PID:-}" ] && [ ! -s "$RUN/watchdog.pid" ]; then
    purge=""; [ "${WATCH_PURGE:-0}" = 1 ] && purge="--purge"
    # setsid + closed stdio: the watchdog outlives us but holds no pipe of the caller
    setsid bash -c '
        echo $$ > "$1/run/watchdog.pid"
        while kill -0 "$2" 2>/dev/null; do sleep 1; done
        rm -f "$1/run/watchdog.pid"
        exec bash "$3/stop.sh" $4 "$1"
    ' watchdog "$STATE" "$WATCH_PID" "$HERE" "$purge" </dev/null >>"$LOGS/watchdog.log" 2>&1 &
fi

log "up: $IMAP_SERVER IMAP 127.0.0.1:$IMAP_PORT IMAPS :$IMAPS_PORT POP3 :${POP3_PORT:-none} SMTP :${SMTP_PORT:-none} SMTPS :${SMTPS_PORT:-none} sep '$DOVECOT_SEP' state $STATE"
