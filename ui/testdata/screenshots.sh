#!/bin/sh
# screenshots.sh runs the real mailferry binary in a real window under Xvfb,
# walks the test-migration wizard against the demo old server by clicking
# (xdotool) and saves a screenshot of each step and of the dashboard
# (ImageMagick import).
#
# Usage, from the module root:  ui/testdata/screenshots.sh [OUTDIR]
# (default OUTDIR assets/screenshots). Needs: Xvfb, xdotool, imagemagick,
# and the Fyne build packages (make gui-deps); CJK glyphs need a CJK font
# such as fonts-droid-fallback. The clicks are positions in the 1024x720
# window: update them if the layout changes.
set -eu
out=${1:-assets/screenshots}
mkdir -p "$out"
tmp=$(mktemp -d)
go build -o "$tmp/mailferry" ./cmd/mailferry
disp=":${MAILFERRY_XVFB_DISPLAY:-99}"
Xvfb "$disp" -screen 0 1280x800x24 >"$tmp/xvfb.log" 2>&1 &
xpid=$!
apid=""
cleanup() {
	[ -n "$apid" ] && kill "$apid" 2>/dev/null || true
	kill "$xpid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
sleep 1
export DISPLAY="$disp"
LANG=C.UTF-8 "$tmp/mailferry" gui --data "$tmp/data" \
	--imap 127.0.0.1:0 --imaps 127.0.0.1:0 --smtp 127.0.0.1:0 \
	--submission 127.0.0.1:0 --submissions 127.0.0.1:0 >"$tmp/app.log" 2>&1 &
apid=$!
xdotool search --sync --name '^Mailferry$' >/dev/null
sleep 2

click() { xdotool mousemove "$1" "$2" click 1; }
shot() { import -window root -crop 1024x720+0+0 "$out/$1.png"; echo "$out/$1.png"; }
next() { click 994 697; }

shot 01-welcome
click 100 353; sleep 2                      # Start the demo old server
shot 01-welcome-demo
next; sleep 1
click 66 389; sleep 3                       # Test connection
shot 02-old-server
next; sleep 1
next; sleep 3                               # login check, test domain
shot 03-account
next; sleep 1
click 115 268; click 115 339; sleep 0.5     # + Greek, Chinese
shot 04-samples
next; sleep 5                               # send samples, wait on the old IMAP
click 960 697; sleep 6                      # Start migration
shot 05-migrate
next; sleep 6                               # checks run
shot 06-check
click 724 145; sleep 0.8; click 580 335; sleep 0.8   # viewer: Japanese sample
shot 06-viewer-japanese
click 724 145; sleep 0.8; click 560 217; sleep 0.8   # viewer: HTML sample
click 737 320; sleep 0.8                             # HTML formatted
shot 06-viewer-html
click 990 697; sleep 2                      # Finish: dashboard
shot 07-dashboard
click 936 197; sleep 1.5                    # Disable migration…
click 580 220; sleep 0.3
xdotool type --delay 20 "bob@example.test"; xdotool key Return
xdotool type --delay 20 "carol@example.test"; sleep 0.3
click 431 601; sleep 2                      # Check readiness
shot 08-readiness
