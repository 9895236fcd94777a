# Mailferry — see README.md.
#   make run      build and open the desktop assistant
#   make test     install the system packages the tests need, then vet and test everything
#   make build    build bin/mailferry
#   make bench    run the benchmarks (store, IMAP front end, migration, relay)
#   make bench-imap  IMAP latency under 10 clients, Mailferry beside Dovecot
#   make package  build the Linux archive and the Windows .exe (see README)

GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN     := bin/mailferry
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

# Debian packages: cgo + Fyne's X11/GL headers to build, a CJK font for the viewer; Dovecot and Postfix
# for the old-server test fixture; Xvfb for screenshots; Python for the
# third-party IMAP client test and the DKIM verifier (dkimpy; PyNaCl for Ed25519). Pebble (the test ACME CA) is built by the
# certificate tests from the Go module cache (MAILFERRY_REQUIRE_PEBBLE=1: no skipping).
# PostgreSQL 15 for the store's second engine: the tests run their own cluster
# (core/internal/pgtest; MAILFERRY_REQUIRE_POSTGRES=1: no skipping).
GUI_PKGS  := gcc pkg-config libgl1-mesa-dev xorg-dev libxkbcommon-dev fonts-droid-fallback

# Cyrus IMAP 3.6, the second real old server of the fixture: Debian's
# cyrus-imapd conflicts with dovecot-imapd (Conflicts: imap-server), so its
# two packages are fetched with apt-get download and unpacked into
# CYRUS_ROOT with dpkg-deb -x (never installed); their libraries and
# saslpasswd2 are installed normally (CYRUS_LIBS; libeatmydata1 turns
# Cyrus's fsyncs off, as the fixture's Dovecot runs with mail_fsync=never).
CYRUS_ROOT := /opt/mailferry-oldtest/cyrus
CYRUS_DEBS := cyrus-common cyrus-imapd
CYRUS_LIBS := libeatmydata1 sasl2-bin libsasl2-modules libsasl2-modules-db libclamav12 libical3 libicu72 libjansson4 libpcre3 \
	libpq5 libxapian30 libzephyr4 libwrap0 libkrb5-3 libldap-2.5-0 libsqlite3-0 libxml2 libssl3 zlib1g
# (defined after CYRUS_LIBS: := expands now, and an undefined CYRUS_LIBS was empty,
# so a fresh machine never got Cyrus's libraries and saslpasswd2.)
TEST_PKGS := $(GUI_PKGS) dovecot-imapd dovecot-lmtpd dovecot-pop3d postfix openssl ca-certificates python3 isync neomutt python3-dkim python3-nacl postgresql $(CYRUS_LIBS)

# apt_install PKGS: install what is missing, non-interactively, without
# letting package scripts start the distribution's daemons (the tests run
# their own on loopback). Postfix is preseeded as "Local only".
define apt_install
	@missing=""; for p in $(1); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "apt-get install$$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "make: run as root (or install:$$missing)"; exit 1; fi; \
		echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections; \
		echo "postfix postfix/mailname string localhost" | debconf-set-selections; \
		made=0; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made=1; fi; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $$missing >/dev/null; rc=$$?; \
		[ $$made = 1 ] && rm -f /usr/sbin/policy-rc.d; exit $$rc; \
	fi
endef

.PHONY: all build run serve test test-deps gui-deps bench bench-imap package package-check clean weed imaptest

# SeaweedFS, the real S3-compatible object storage of the tests
# (core/internal/s3test), built once into the project like the fyne CLI.
# `go install` refuses its module (replace directives), so the module is
# downloaded, copied to a writable directory (WEED_SRC) and built there with
# -trimpath, which keeps the directory out of Go's build cache keys: a
# rebuild in any clone is quick while the build cache is warm (about a
# minute; cold: about 12 minutes on 2 idle cores). Its default build already
# leaves out the optional filer stores
# (build tags rocksdb, ydb, tikv, ...); `weed` is one package holding every
# command, so there is nothing smaller to build for `weed server -s3`.
WEED_VERSION := v0.0.0-20261109003541-7506e5f91cd6
WEED         := bin/tools/weed-$(WEED_VERSION)/weed
WEED_SRC     ?= $(CURDIR)/$(dir $(WEED))src

weed: $(WEED)

$(WEED):
	@set -e; dir="$$(cd /tmp && GOFLAGS= $(GO) mod download -json github.com/seaweedfs/seaweedfs@$(WEED_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p')"; \
	test -n "$$dir"; src="$(WEED_SRC)"; rm -rf "$$src"; mkdir -p "$$src"; \
	cp -R "$$dir"/. "$$src"; chmod -R u+w "$$src"; \
	echo "building weed $(WEED_VERSION) (cold: about 12 minutes)"; \
	(cd "$$src" && GOFLAGS=-buildvcs=false $(GO) build -trimpath -ldflags '-s -w' -o "$(CURDIR)/$(WEED).new" ./weed); \
	rm -rf "$$src"; mv "$(CURDIR)/$(WEED).new" "$(CURDIR)/$(WEED)"

all: build

gui-deps:
	$(call apt_install,$(GUI_PKGS))

# Dovecot's imaptest (the IMAP conformance tester; TestImaptestScripts in
# core/imapfront runs its scripted tests against Mailferry), built from the
# source vendored in testdata/imaptest (a pinned commit and a 3-line patch
# for Debian 12's libdovecot 2.3.19; see build.sh) against dovecot-dev (the
# headers) and dovecot-core (libdovecot itself, which dovecot-dev does not
# pull in: on a fresh Debian 12 machine the link failed, `cannot find -ldovecot`).
# Cold: about 1 minute on 2 busy cores; warm (already built): nothing to do.
IMAPTEST_COMMIT := 924f619
IMAPTEST        := bin/tools/imaptest-$(IMAPTEST_COMMIT)/imaptest
IMAPTEST_PKGS   := dovecot-dev dovecot-core autoconf automake libtool gcc make patch
IMAPTEST_SRC    := testdata/imaptest/build.sh testdata/imaptest/imaptest-$(IMAPTEST_COMMIT).tar.gz testdata/imaptest/dovecot-2.3-params.patch

imaptest: $(IMAPTEST)

$(IMAPTEST): $(IMAPTEST_SRC)
	$(call apt_install,$(IMAPTEST_PKGS))
	testdata/imaptest/build.sh $(dir $(IMAPTEST))

test-deps: $(WEED) $(IMAPTEST)
	$(call apt_install,$(TEST_PKGS))
	@want="$$(apt-cache policy cyrus-imapd 2>/dev/null | awk '/Candidate:/ {print $$2}')"; \
	if [ -z "$$want" ] || [ "$$want" = "(none)" ]; then echo "make: no cyrus-imapd package in apt's sources"; exit 1; fi; \
	if [ "$$(cat $(CYRUS_ROOT)/.version 2>/dev/null)" != "$$want" ]; then \
		echo "unpacking cyrus-imapd $$want into $(CYRUS_ROOT)"; \
		if [ "$$(id -u)" != 0 ]; then echo "make: run as root (to unpack Cyrus into $(CYRUS_ROOT))"; exit 1; fi; \
		dl="$$(mktemp -d)" && chmod 755 "$$dl" && \
		(cd "$$dl" && apt-get download -q $(CYRUS_DEBS) >/dev/null 2>&1) && \
		rm -rf $(CYRUS_ROOT).new && mkdir -p $(CYRUS_ROOT).new && \
		for d in "$$dl"/*.deb; do dpkg-deb -x "$$d" $(CYRUS_ROOT).new || exit 1; done && \
		echo "$$want" > $(CYRUS_ROOT).new/.version && \
		rm -rf $(CYRUS_ROOT) && mv $(CYRUS_ROOT).new $(CYRUS_ROOT) && rm -rf "$$dl" || { rm -rf "$$dl"; exit 1; }; \
	fi

build: gui-deps
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/mailferry

run: build
	./$(BIN)

serve: build
	./$(BIN) serve

# The core packages run under the race detector. The store's suite runs
# once per engine: on SQLite with -race, on PostgreSQL (+ S3) without it,
# beside the cmd and ui tests (the engine's shared code is raced on SQLite;
# this keeps a warm run under 15 minutes). The race pass is built with
# mailferry_testhash: cheap argon2id parameters in the test binaries only
# (core/store/testhash.go; the race detector made each real hash cost
# seconds); the PostgreSQL pass, the cmd tests' real binaries and the
# last line (the tests of the hash's own cost, and of allocation counts,
# which the race detector makes unreliable) use the real ones.
test: test-deps
	$(GO) vet ./...
	$(GO) vet -tags ci,mailferry_testhash ./...
	MAILFERRY_REQUIRE_OLDSERVER=1 MAILFERRY_REQUIRE_PEBBLE=1 MAILFERRY_REQUIRE_POSTGRES=1 MAILFERRY_REQUIRE_S3=1 MAILFERRY_IMAP_STRESS=20s MAILFERRY_STORE_ENGINES=sqlite $(GO) test -race -tags ci,mailferry_testhash -timeout 20m ./core/...
	MAILFERRY_REQUIRE_OLDSERVER=1 MAILFERRY_REQUIRE_POSTGRES=1 MAILFERRY_REQUIRE_S3=1 MAILFERRY_STORE_ENGINES=postgresql $(GO) test -tags ci -timeout 20m ./core/store/ ./cmd/... ./ui/...
	$(GO) test -tags ci -run 'HashWaitBounded|DummyHashIsComputed|FirstHashFaults|LoginFlood|ReadBeginsInPlace|ReadStatementsInPlace' ./core/auth/ ./core/store/

# Benchmarks with a fixed workload (a 5,000-message copy, the same mailbox
# through `store copy` into PostgreSQL/SQLite + SeaweedFS, 20,000 FETCHes,
# 1,000 deliveries; the real `serve` under 50 simultaneous first logins;
# 50 small accounts beside one big one through `migrate` and `serve`,
# medians of three) run once; per-message ones (BenchmarkAppend,
# BenchmarkStageAppend, BenchmarkSummarize) 2,000 times.
PERMSG_BENCH = Append|Summarize
bench: test-deps
	MAILFERRY_REQUIRE_OLDSERVER=1 MAILFERRY_REQUIRE_POSTGRES=1 MAILFERRY_REQUIRE_S3=1 $(GO) test -run '^$$' -bench . -skip '$(PERMSG_BENCH)' -benchtime 1x -timeout 60m ./core/...
	$(GO) test -run '^$$' -bench '$(PERMSG_BENCH)' -benchtime 2000x -benchmem ./core/...
	MAILFERRY_REQUIRE_OLDSERVER=1 MAILFERRY_REQUIRE_POSTGRES=1 MAILFERRY_REQUIRE_S3=1 $(GO) test -run '^$$' -bench 'FirstLoginBurst|ManyUsers|MigrateProcess' -benchtime 1x -timeout 90m ./cmd/mailferry

# Per-command latency (p50/p90 of LOGIN, SELECT, FETCH, STORE, APPEND,
# EXPUNGE) under 10 clients, Mailferry (a `mailferry serve` process built
# from the module) and the Dovecot fixture on the same 2,000 messages,
# medians of three runs, with each server's CPU per round and per command
# and the load it took (rounds/s, cmds/s, cores); paced tables (each client's
# rounds 250 ms apart, and at 80% of the slower server's closed-loop rate)
# give both servers the same offered load (MAILFERRY_LATENCY_PACE); a verdict
# per load and command at the end (also part of `make bench`).
bench-imap: test-deps
	MAILFERRY_REQUIRE_OLDSERVER=1 $(GO) test -run '^$$' -bench 'Latency10Clients' -benchtime 1x -timeout 30m ./core/imapfront/

clean:
	rm -rf bin dist

# ---- packaging (Linux archive + Windows .exe); see README "Packages" ----
# Not part of `make test`: a cold build of both takes several minutes.
#   make package        dist/mailferry-linux-amd64.tar.xz and dist/mailferry.exe
#   make package-check  make package, then check both (PE header and
#                       resources, archive contents, the wizard under Xvfb)
# Release builds: -tags migrated_fynedo (fyne's thread checks off; `make
# build` keeps them), fyne's release mode (-trimpath -s -w), main.version.
FYNE_VERSION := v1.7.4
FYNE         := bin/tools/fyne-$(FYNE_VERSION)/fyne
PACKAGE_PKGS := $(GUI_PKGS) gcc-mingw-w64-x86-64 xz-utils
CHECK_PKGS   := xvfb xdotool imagemagick x11-utils libgl1-mesa-dri

.PHONY: package-deps package-check-deps

# The fyne CLI, installed into the project (not $GOPATH/bin) at a fixed version.
$(FYNE):
	GOBIN=$(CURDIR)/$(dir $(FYNE)) GOFLAGS= $(GO) install fyne.io/tools/cmd/fyne@$(FYNE_VERSION)

package-deps:
	$(call apt_install,$(PACKAGE_PKGS))

package-check-deps:
	$(call apt_install,$(CHECK_PKGS))

package: package-deps $(FYNE)
	GO=$(GO) FYNE=$(CURDIR)/$(FYNE) VERSION=$(VERSION) bash .ci/package/package.sh

package-check: package package-check-deps
	GO=$(GO) bash .ci/package/check.sh
