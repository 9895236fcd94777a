#!/bin/sh
# Build Dovecot's imaptest (the IMAP conformance tester) from the source
# vendored beside this script, for the scripted-test run of core/imapfront
# (TestImaptestScripts). Usage: build.sh OUTDIR
#
# Source: github.com/dovecot/imaptest at 924f619d4ad80f370bd45fb2cec27805fee6d19c
# (2022-03-09), a `git archive` of that commit (MIT, COPYING and COPYING.MIT
# inside). Later commits follow Dovecot 2.4's library API (str_begins with 3
# arguments, settings, var_expand, ssl iostreams); Debian 12's dovecot-dev is
# 2.3.19, whose imap_parser_create takes a 4th argument (parser parameters,
# NULL for the defaults): dovecot-2.3-params.patch, three call sites, is the
# whole difference.
#
# Needs the Debian packages dovecot-dev, dovecot-core (libdovecot), autoconf, automake, libtool, gcc,
# make (libdovecot is linked from /usr/lib/dovecot, found there at run time
# through the binary's RUNPATH). Writes OUTDIR/imaptest and OUTDIR/tests (the
# scripted tests of the same commit); built in a temporary directory, OUTDIR
# replaced only when the build succeeded.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
out="${1%/}"
commit=924f619
sum=b4d411eee9fc843cf3e791058996cfd292d91109c5b222465ae476e2ed8d837b
tarball="$here/imaptest-$commit.tar.gz"
echo "$sum  $tarball" | sha256sum -c --quiet -
dovecot_lib=/usr/lib/dovecot
test -f "$dovecot_lib/dovecot-config" || { echo "imaptest: $dovecot_lib/dovecot-config missing: apt-get install dovecot-dev" >&2; exit 1; }
for t in autoreconf libtoolize make cc; do
	command -v "$t" >/dev/null || { echo "imaptest: $t missing: apt-get install autoconf automake libtool gcc make" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar -xzf "$tarball" -C "$work"
src="$work/imaptest-$commit"
(cd "$src" && patch -s -p1 < "$here/dovecot-2.3-params.patch")
# build-aux/git-version-gen reads the version from the file "version" outside git.
echo "0.0.0-$commit-mailferry1" > "$src/version"
(
	cd "$src"
	autoreconf -i >/dev/null 2>&1 || autoreconf -i
	./configure -q --with-dovecot="$dovecot_lib" LDFLAGS="-Wl,-rpath,$dovecot_lib" >/dev/null
	make -s -j"$(nproc)" >/dev/null
)
rm -rf "$out.new"
mkdir -p "$out.new"
cp "$src/src/imaptest" "$out.new/imaptest"
cp -R "$src/src/tests" "$out.new/tests"
cp "$src/COPYING" "$src/COPYING.MIT" "$out.new/"
rm -rf "$out"
mv "$out.new" "$out"
echo "imaptest $commit built into $out"
