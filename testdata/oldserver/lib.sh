# shellcheck shell=bash
# Helpers shared by start.sh / stop.sh / wipe-user.sh.  Source it, don't run it.
# Adapted from the team's reference harness.  Rules: loopback only; processes
# are only ever stopped by the PID recorded in our own pid files.
set -euo pipefail

log()  { printf '[oldserver %s] %s\n' "$(basename "$0")" "$*" >&2; }
die()  { log "ERROR: $*"; exit 1; }

require_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root"
}

# need CMD... : fail clearly when a program is missing.
need() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || die "$c not found (apt-get install dovecot-imapd dovecot-lmtpd postfix openssl)"
    done
}

# ensure_system_user NAME : a no-login system user+group owning mail storage.
# Serialized with flock: parallel test processes may race here.
ensure_system_user() {
    local name="$1"
    (
        flock 9
        getent group "$name" >/dev/null || groupadd --system "$name"
        id -u "$name" >/dev/null 2>&1 || \
            useradd --system --gid "$name" --home-dir /nonexistent --no-create-home \
                    --shell /usr/sbin/nologin "$name"
    ) 9>/tmp/.mailferry-oldtest-useradd.lock
}

# wait_port HOST PORT [TIMEOUT_S] : wait until a TCP port accepts connections.
wait_port() {
    local host="$1" port="$2" t="${3:-20}" i
    for ((i = 0; i < t * 20; i++)); do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    return 1
}

# answering HOST PORT... : the PORTs that accept a connection now (for an
# error message: when a daemon could not start, another process has them).
answering() {
    local host="$1" p out=""
    shift
    for p in "$@"; do
        if (exec 3<>"/dev/tcp/$host/$p") 2>/dev/null; then out="$out $p"; fi
    done
    printf '%s' "${out# }"
}

# pid_running PIDFILE [COMM] : true if the PID in PIDFILE is alive (and, when
# COMM is given, its /proc/PID/comm matches, so a recycled PID is not ours).
pid_running() {
    local f="$1" comm="${2:-}" pid
    [ -s "$f" ] || return 1
    pid="$(tr -dc '0-9' < "$f")"
    alive "$pid" || return 1
    [ -z "$comm" ] || grep -q -- "$comm" "/proc/$pid/comm" 2>/dev/null
}

# alive PID : the process exists and is not a zombie (an exited daemon stays a
# zombie until init reaps it, which can take a while in containers).
alive() {
    local st
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
    st="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)"
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# stop_pidfile PIDFILE COMM [TIMEOUT_S [group]] : SIGTERM the PID recorded in
# PIDFILE (only if it is alive and named COMM), wait, then SIGKILL that same
# PID.  With "group", the process group led by that PID is signalled.
stop_pidfile() {
    local f="$1" comm="$2" t="${3:-15}" grp="${4:-}" pid i target
    if ! pid_running "$f" "$comm"; then rm -f "$f"; return 0; fi
    pid="$(tr -dc '0-9' < "$f")"
    target="$pid"; [ "$grp" = group ] && target="-$pid"
    kill -TERM -- "$target" 2>/dev/null || true
    for ((i = 0; i < t * 20; i++)); do
        alive "$pid" || { rm -f "$f"; return 0; }
        sleep 0.05
    done
    log "pid $pid ($comm) still alive after ${t}s, sending SIGKILL"
    kill -KILL -- "$target" 2>/dev/null || true
    rm -f "$f"
}

# make_self_signed_cert DIR : DIR/cert.pem + DIR/key.pem for CN=localhost,
# SAN localhost, mail.example.test, 127.0.0.1; valid 10 years.  Kept if present.
make_self_signed_cert() {
    local d="$1"
    mkdir -p "$d"
    [ -s "$d/cert.pem" ] && [ -s "$d/key.pem" ] && return 0
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=localhost/O=mailferry-oldtest" \
        -addext "subjectAltName=DNS:localhost,DNS:mail.example.test,IP:127.0.0.1" \
        -keyout "$d/key.pem" -out "$d/cert.pem" >/dev/null 2>&1 \
        || die "openssl could not make a self-signed certificate"
    chmod 644 "$d/cert.pem"; chmod 600 "$d/key.pem"
}

# make_postfix_queue DIR : the Postfix queue sub-directories with the owners
# and modes "postfix set-permissions" would give them (that command takes ~2s).
make_postfix_queue() {
    local q="$1" d
    mkdir -p "$q"
    chown root:root "$q"; chmod 755 "$q"
    for d in active bounce corrupt defer deferred flush hold incoming private saved trace; do
        mkdir -p "$q/$d"; chown postfix:root "$q/$d"; chmod 700 "$q/$d"
    done
    mkdir -p "$q/maildrop" "$q/public" "$q/pid"
    chown postfix:postdrop "$q/maildrop" "$q/public"
    chmod 730 "$q/maildrop"; chmod 710 "$q/public"
    chown root:root "$q/pid"; chmod 755 "$q/pid"
}
