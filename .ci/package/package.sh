#!/usr/bin/env bash
# Builds Mailferry's release packages into dist/ (called by `make package`):
#
#   dist/mailferry-linux-amd64.tar.xz  `fyne package --target linux`: the
#        binary, the icon and a .desktop file under usr/local, plus a Makefile
#        whose `make install` (or `make user-install`) puts them in place.
#   dist/mailferry.exe                 `fyne package --target windows`,
#        cross-built with mingw-w64: a GUI-subsystem (-H=windowsgui) PE32+
#        executable with the icon, version information and manifest embedded.
#
# Both are release builds: -tags migrated_fynedo (the UI calls fyne.Do, so
# Fyne's thread checks are off; `make build` keeps them), fyne's `release`
# tag, -trimpath -s -w, and -X main.version=$VERSION.
#
# fyne writes into the directory it builds (a generated metadata file, a
# .syso, the binary) and bumps Build in FyneApp.toml, so it works on a copy
# of the module in dist/.stage, never on the working tree.
#
# Environment: GO (go binary), FYNE (fyne CLI), VERSION (main.version),
# TARGETS (default "linux windows"), CC_WINDOWS (default
# x86_64-w64-mingw32-gcc).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
GO=${GO:-go}
FYNE=${FYNE:-$root/bin/tools/fyne}
VERSION=${VERSION:-dev}
TARGETS=${TARGETS:-linux windows}
CC_WINDOWS=${CC_WINDOWS:-x86_64-w64-mingw32-gcc}
TAGS=migrated_fynedo
main=cmd/mailferry
out=$root/dist
stage=$out/.stage

say() { printf 'package: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ -x "$FYNE" ] || die "no fyne CLI at $FYNE (make package installs it)"
export GO

# The metadata: FyneApp.toml beside the main package, or at the module root.
meta=""
for m in "$root/$main/FyneApp.toml" "$root/FyneApp.toml"; do
	[ -f "$m" ] && { meta=$m; break; }
done
[ -n "$meta" ] || die "no FyneApp.toml in $main/ or at the module root"
# Its icon, relative to the FyneApp.toml that names it.
icon_rel=$(sed -n 's/^[[:space:]]*Icon[[:space:]]*=[[:space:]]*"\(.*\)"[[:space:]]*$/\1/p' "$meta" | head -n1)
[ -n "$icon_rel" ] || die "$meta names no Icon"
icon=$(cd "$(dirname "$meta")" && realpath -e "$icon_rel") || die "icon $icon_rel named in $meta not found"

# Stage a copy of the module: no VCS, build output or test data.
rm -rf "$stage"
mkdir -p "$stage/src"
tar -C "$root" --exclude=./.git --exclude=./bin --exclude=./dist --exclude=testdata -cf - . |
	tar -C "$stage/src" -xf -
src=$stage/src/$main
cp "$meta" "$src/FyneApp.toml"

# -X main.version reaches fyne's go build through GOFLAGS (fyne lifts
# -ldflags= out of GOFLAGS and adds its own).
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-ldflags=-X=main.version=$VERSION"
mkdir -p "$out"

for target in $TARGETS; do
	start=$(date +%s)
	case $target in
	linux)
		rm -f "$out/mailferry-linux-amd64.tar.xz"
		mkdir -p "$stage/linux"
		(cd "$stage/linux" && "$FYNE" package --target linux --src "$src" \
			--release --tags "$TAGS" --icon "$icon")
		set -- "$stage"/linux/*.tar.xz
		[ $# = 1 ] && [ -f "$1" ] || die "fyne made no .tar.xz"
		mv "$1" "$out/mailferry-linux-amd64.tar.xz"
		f=$out/mailferry-linux-amd64.tar.xz
		;;
	windows)
		command -v "$CC_WINDOWS" >/dev/null || die "no $CC_WINDOWS (apt-get install gcc-mingw-w64-x86-64)"
		rm -f "$out/mailferry.exe"
		mkdir -p "$stage/windows"
		# fyne builds once, writes the .syso, then builds again, but it
		# takes -ldflags out of GOFLAGS on the first build only. Naming an
		# existing --executable skips the first build (the second one
		# overwrites that file), so -X main.version reaches the .exe.
		: >"$src/mailferry.exe"
		(cd "$stage/windows" && CC=$CC_WINDOWS CGO_ENABLED=1 GOOS=windows GOARCH=amd64 \
			"$FYNE" package --target windows --src "$src" --executable "$src/mailferry.exe" \
			--release --tags "$TAGS" --icon "$icon")
		# fyne names the .exe after Name in FyneApp.toml, in the source dir.
		exe=$(find "$src" -maxdepth 1 -iname '*.exe' | head -n1)
		[ -n "$exe" ] && [ -s "$exe" ] || die "fyne made no .exe"
		mv "$exe" "$out/mailferry.exe"
		f=$out/mailferry.exe
		;;
	*) die "unknown target $target" ;;
	esac
	say "$(printf '%-36s %9s bytes  built in %ss' "${f#"$root"/}" "$(stat -c %s "$f")" $(($(date +%s) - start)))"
done
rm -rf "$stage"
