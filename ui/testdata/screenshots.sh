#!/bin/bash
# screenshots.sh runs the real mailferry binary in a real window under Xvfb,
# at 800x600, at 1280x800 and on a 4K screen (3840x2160, FYNE_SCALE=2 as a
# HiDPI desktop sets it), walks the test-migration wizard against the demo
# old server with the keyboard only (xdotool: Tab, Space, Enter, the same
# keys an admin uses) and saves a screenshot of each step, of the
# untrusted-certificate step, of an error (the SMTP port typed into the IMAP
# field), of the dashboard and of its readiness check before Disable
# migration (ImageMagick import). Every screenshot in the README comes from
# this one command.
#
# Usage, from the module root:  ui/testdata/screenshots.sh [OUTDIR]
# (default OUTDIR assets/screenshots; the shots go to OUTDIR/800x600,
# OUTDIR/1280x800 and OUTDIR/3840x2160; MAILFERRY_SCREENSHOT_ONLY=1 takes
# 800x600 only). Needs: Xvfb, xdotool, imagemagick, and the Fyne build
# packages (make gui-deps); CJK glyphs need a CJK font such as
# fonts-droid-fallback. No mouse positions: it works at any window size as
# long as the focus order of the old-server page stays (host, IMAP port,
# IMAP security, SMTP port, SMTP security, certificate, Test connection,
# Copy fingerprint, Trust this certificate).
set -euo pipefail
out=${1:-assets/screenshots}
tmp=$(mktemp -d)
if [ -n "${MAILFERRY_BIN:-}" ]; then cp "$MAILFERRY_BIN" "$tmp/mailferry"; else go build -o "$tmp/mailferry" ./cmd/mailferry; fi
disp=":${MAILFERRY_XVFB_DISPLAY:-99}"
base=${MAILFERRY_SCREENSHOT_PORT:-24100} # Mailferry's own ports: base .. base+4
xpid="" apid=""
stop() {
	if [ -n "$apid" ]; then # SIGTERM closes the window: a clean shutdown
		kill "$apid" 2>/dev/null || true
		for _ in $(seq 1 40); do kill -0 "$apid" 2>/dev/null || break; sleep 0.25; done
		kill -9 "$apid" 2>/dev/null || true
	fi
	[ -n "$xpid" ] && kill "$xpid" 2>/dev/null || true
	wait 2>/dev/null || true
	apid="" xpid=""
}
trap 'stop; rm -rf "$tmp"' EXIT INT TERM
export DISPLAY="$disp"

key() { xdotool key --delay 120 "$@"; sleep 0.4; }
# greeting PORT prints the first bytes a server on 127.0.0.1:PORT sends.
greeting() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; head -c 4 <&3" 2>/dev/null || true; }
# demo_imap_port prints the demo old server's IMAP port: the one of the
# app's listeners, other than Mailferry's own, that greets in IMAP.
demo_imap_port() {
	local p
	for p in $(ss -ltnp | grep "pid=$apid," | sed -E 's/.*127\.0\.0\.1:([0-9]+).*/\1/'); do
		if [ "$p" -ge "$base" ] && [ "$p" -le $((base + 4)) ]; then continue; fi
		if [ "$(greeting "$p")" = "* OK" ]; then echo "$p"; return; fi
	done
}

shoot() { # W H [SCALE]
	local w=$1 h=$2 scale=${3:-1} dir="$out/$1x$2"
	# A 4K window renders about four times the pixels in software under
	# Xvfb: the waits between steps are three times as long.
	local f=1
	[ "$w" -gt 2000 ] && f=3
	nap() { sleep $(($1 * f)); }
	mkdir -p "$dir"
	shot() { import -window root -crop "${w}x${h}+0+0" "$dir/$1.png"; echo "$dir/$1.png"; }
	Xvfb "$disp" -screen 0 "${w}x${h}x24" >"$tmp/xvfb.log" 2>&1 &
	xpid=$!
	sleep 1
	rm -rf "$tmp/data"
	FYNE_SCALE=$scale LANG=C.UTF-8 "$tmp/mailferry" gui --data "$tmp/data" \
		--imap "127.0.0.1:$base" --imaps "127.0.0.1:$((base + 1))" --smtp "127.0.0.1:$((base + 2))" \
		--submission "127.0.0.1:$((base + 3))" --submissions "127.0.0.1:$((base + 4))" >"$tmp/app.log" 2>&1 &
	apid=$!
	local win
	win=$(xdotool search --sync --name '^Mailferry$' | head -1)
	nap 2
	xdotool windowmove "$win" 0 0
	xdotool windowsize --sync "$win" "$w" "$h" || true
	sleep 1
	xdotool windowsize "$win" "$w" "$h" # again: Fyne may size the window once mapped
	sleep 1

	shot 01-welcome
	key Tab space; nap 2                    # Start the demo old server
	shot 01-welcome-demo
	key Return; nap 1                       # Next: the old server, host focused
	key Return; nap 3                       # Next: the test finds the self-signed certificate
	shot 02-old-server-trust
	key Tab Tab Tab Tab Tab Tab Tab Tab Tab space; nap 3   # Trust this certificate
	shot 02-old-server
	local imap
	imap=$(demo_imap_port)
	key Tab Tab ctrl+a                        # the IMAP port field
	xdotool type --delay 40 "$((base + 2))"   # Mailferry's SMTP port, by mistake
	key Return; nap 3                       # Next: tested, refused in words
	shot 02-old-server-error
	key ctrl+a
	xdotool type --delay 40 "$imap"
	key Return; nap 4                       # Next: tested, on to the account step
	shot 03-account
	key Return; nap 4                       # login check; the wizard moves on
	shot 04-samples
	key Return; nap 8                       # send the samples, wait on the old IMAP
	shot 04-samples-arrived
	key Return; nap 1                       # Next: Migrate
	key Return; nap 8                       # Start migration
	shot 05-migrate
	key Return; nap 8                       # Next: the checks run
	shot 06-check
	key Return; nap 3                       # Finish: the dashboard
	shot 07-dashboard
	key Tab Tab Tab Tab space; nap 5        # Disable migration…: the readiness check runs
	shot 08-readiness                         # no list of the old server's users: "unknown"
	stop
	if grep -q "Error in Fyne call thread" "$tmp/app.log"; then
		echo "screenshots.sh: the assistant logged $(grep -c "Error in Fyne call thread" "$tmp/app.log") times 'Error in Fyne call thread'" >&2
	fi
}

shoot 800 600
if [ -z "${MAILFERRY_SCREENSHOT_ONLY:-}" ]; then
	shoot 1280 800
	shoot 3840 2160 2
fi
