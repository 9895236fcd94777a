#!/usr/bin/env bash
# Checks the packages that `make package` left in dist/ (called by
# `make package-check`):
#
#  1. dist/mailferry.exe is a PE32+ x86-64 GUI-subsystem executable with an
#     icon, version information and a manifest (pecheck.go, debug/pe).
#  2. dist/mailferry-linux-amd64.tar.xz holds the binary, the icon and a
#     .desktop file that names both; the binary is an x86-64 ELF executable
#     and `mailferry version` runs.
#  3. The archived binary, started under Xvfb with a fresh data directory
#     whose path has spaces and its listeners off (so it needs no free
#     port), keeps running and opens a window named
#     Mailferry (the wizard); a screenshot goes to dist/screenshot-linux.png
#     and must not be blank.
#
# Prints one line per check and exits 1 if any failed.
# Environment: GO, WAIT (seconds to wait for the window, default 8), DIST
# (default dist/).
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
GO=${GO:-go}
WAIT=${WAIT:-8}
dist=${DIST:-$root/dist}
exe=$dist/mailferry.exe
archive=$dist/mailferry-linux-amd64.tar.xz
shot=$dist/screenshot-linux.png
failed=0
ok() { printf 'package-check: ok   %s\n' "$*"; }
bad() { printf 'package-check: FAIL %s\n' "$*"; failed=1; }

tmp=$(mktemp -d)
xpid="" apid=""
cleanup() {
	[ -n "$apid" ] && kill "$apid" 2>/dev/null
	[ -n "$xpid" ] && kill "$xpid" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# release_tags FILE: the Go build information in FILE records the release
# build tags (migrated_fynedo: no thread checks; release).
release_tags() {
	local t
	t=$("$GO" version -m "$1" 2>/dev/null | sed -n 's/^[[:space:]]*build[[:space:]]*-tags=//p')
	case ",$t," in
	*,migrated_fynedo,*release,* | *,release,*migrated_fynedo,*) ok "${1##*/} built with -tags $t" ;;
	*) bad "${1##*/} built with -tags '$t', want migrated_fynedo and release" ;;
	esac
}

# 1. Windows executable.
if [ ! -f "$exe" ]; then
	bad "no ${exe#"$root"/}"
elif (cd "$root" && "$GO" run .ci/package/pecheck.go "$exe"); then
	ok "${exe#"$root"/}: PE32+ x86-64 GUI executable with icon, version info and manifest"
	release_tags "$exe"
else
	bad "${exe#"$root"/} (see pecheck output above)"
fi

# 2. Linux archive.
bin=""
if [ ! -f "$archive" ]; then
	bad "no ${archive#"$root"/}"
else
	list=$(tar -tJf "$archive") || bad "tar cannot list ${archive#"$root"/}"
	printf '%s\n' "$list" | sed 's/^/    /'
	binpath=$(printf '%s\n' "$list" | grep -E '/usr/(local/)?bin/mailferry$' | head -n1)
	iconpath=$(printf '%s\n' "$list" | grep -E '/usr/(local/)?share/pixmaps/[^/]+\.png$' | head -n1)
	desktop=$(printf '%s\n' "$list" | grep -E '/usr/(local/)?share/applications/[^/]+\.desktop$' | head -n1)
	[ -n "$binpath" ] && ok "archive holds the binary $binpath" || bad "archive holds no usr/local/bin/mailferry"
	[ -n "$iconpath" ] && ok "archive holds the icon $iconpath" || bad "archive holds no share/pixmaps/*.png icon"
	[ -n "$desktop" ] && ok "archive holds the desktop file $desktop" || bad "archive holds no share/applications/*.desktop"
	mkdir -p "$tmp/x" && tar -C "$tmp/x" -xJf "$archive"
	if [ -n "$desktop" ] && [ -n "$iconpath" ]; then
		d=$tmp/x/$desktop
		iconname=$(basename "$iconpath" .png)
		if grep -qx 'Exec=mailferry' "$d" && grep -qx "Icon=$iconname" "$d" && grep -q '^Name=' "$d"; then
			ok "desktop file runs mailferry with icon $iconname"
		else
			bad "desktop file does not name Exec=mailferry and Icon=$iconname:"; sed 's/^/    /' "$d"
		fi
		if [ "$(head -c 8 "$tmp/x/$iconpath" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then
			ok "icon is a PNG"
		else
			bad "icon $iconpath is not a PNG"
		fi
	fi
	if [ -n "$binpath" ]; then
		bin=$tmp/x/$binpath
		# ELF magic, 64-bit class, e_machine 0x3e (x86-64).
		if [ "$(head -c 5 "$bin" | od -An -tx1 | tr -d ' \n')" = 7f454c4602 ] &&
			[ "$(od -An -tx1 -j 18 -N 2 "$bin" | tr -d ' \n')" = 3e00 ]; then
			ok "binary is an x86-64 ELF executable"
		else
			bad "binary is not an x86-64 ELF executable"
		fi
		release_tags "$bin"
		if v=$("$bin" version 2>"$tmp/version.err"); then
			ok "binary runs: $v"
		else
			bad "'mailferry version' failed: $v $(cat "$tmp/version.err")"
		fi
	fi
fi

# 3. The archived binary under Xvfb.
if [ -n "$bin" ]; then
	for t in Xvfb xdotool import identify; do
		command -v $t >/dev/null || { bad "no $t (make package-check installs xvfb xdotool imagemagick)"; bin=""; }
	done
fi
if [ -n "$bin" ]; then
	mkdir -p "$tmp/home" "$tmp/data dir with spaces"
	exec 3>"$tmp/display"
	Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp >"$tmp/xvfb.log" 2>&1 &
	xpid=$!
	exec 3>&-
	for _ in $(seq 50); do [ -s "$tmp/display" ] && break; sleep 0.1; done
	if [ ! -s "$tmp/display" ]; then
		bad "Xvfb did not start:"; sed 's/^/    /' "$tmp/xvfb.log"
	else
		export DISPLAY=:$(head -n1 "$tmp/display")
		HOME=$tmp/home XDG_CONFIG_HOME=$tmp/home/.config XDG_DATA_HOME=$tmp/home/.local/share \
			"$bin" gui --data "$tmp/data dir with spaces" \
			--imap off --imaps off --smtp off --submission off --submissions off >"$tmp/app.log" 2>&1 &
		apid=$!
		win=""
		for _ in $(seq $((WAIT * 2))); do
			win=$(xdotool search --onlyvisible --name Mailferry 2>/dev/null | head -n1)
			[ -n "$win" ] && break
			kill -0 "$apid" 2>/dev/null || break
			sleep 0.5
		done
		sleep 2 # let it draw
		if kill -0 "$apid" 2>/dev/null; then ok "mailferry still running under Xvfb on $DISPLAY"; else bad "mailferry exited under Xvfb"; fi
		if [ -n "$win" ]; then
			ok "window '$(xdotool getwindowname "$win" 2>/dev/null)' ($(xdotool getwindowgeometry "$win" 2>/dev/null | sed -n 's/.*Geometry: //p'))"
		else
			bad "no window named Mailferry appeared within ${WAIT}s"; xwininfo -root -tree 2>/dev/null | sed 's/^/    /' | head -n 20
		fi
		if import -window root "$shot" 2>"$tmp/import.log"; then
			colours=$(identify -format '%k' "$shot" 2>/dev/null || echo 0)
			if [ "${colours:-0}" -gt 16 ]; then
				ok "screenshot ${shot#"$root"/} ($colours colours)"
			else
				bad "screenshot ${shot#"$root"/} looks blank ($colours colours)"
			fi
		else
			bad "screenshot failed: $(cat "$tmp/import.log")"
		fi
		if [ -f "$tmp/data dir with spaces/mailferry.db" ]; then
			ok "store opened in the --data directory with spaces: $(ls "$tmp/data dir with spaces" | tr '\n' ' ')"
		else
			bad "no mailferry.db in the --data directory \"$tmp/data dir with spaces\""
		fi
		printf '    program output:\n'; sed 's/^/    /' "$tmp/app.log" | head -n 30
	fi
fi

if [ $failed = 0 ]; then
	echo "package-check: all checks passed"
else
	echo "package-check: some checks FAILED"
fi
exit $failed
