package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"mailferry/core"
)

const storeCopyHelp = `Usage: mailferry store copy --to TARGET.json [--config FILE] [--data DIR] [--database-url URL]

Copies this Mailferry's store (the one --config/--data name: by default the
embedded SQLite database and its pack files) into the store the target
configuration names, as a rule the distributed engine (database_url:
PostgreSQL; s3_*: S3-compatible object storage), then verifies the copy.

  - Stop serve, migrate and the assistant first: the source is opened
    exclusively, and the copy refuses a store another process has open.
  - The target must be empty (a new database and bucket) and have its own
    data_dir; the copy refuses anything else, and no serve uses the target
    until the copy is complete.
  - Restartable: each account is copied in one transaction of its own. After
    a failure or Ctrl-C, run the same command again: accounts copied whole
    are skipped, the rest are copied, nothing is copied twice.
  - Verify: every row of every copied table is compared column by column
    (accounts and their password hashes, mailboxes and their UIDVALIDITY,
    UIDNEXT, HIGHESTMODSEQ, every message's UID, flags, INTERNALDATE and
    MODSEQ, ...) and every message's bytes are read back from both sides and
    their hash compared with their key. Any difference: exit status 1.
  - DKIM keys (files under the data directory) are copied to the target's
    data directory; copy them to every other node's data directory too.

Tables copied:
%s
Tables not copied:
%s
Options:
`

const adoptBucketHelp = `Usage: mailferry store adopt-bucket [--delete-unnamed] [--config FILE] [--data DIR] [--database-url URL]

Says that this configuration's database is the store's own, after another
database of the same store used its bucket: a copy of the database (a
backup restored beside the store, a staging copy, a clone of the machine, a
PostgreSQL copy), or this database restored from a backup. Each database
leaves epochs in the bucket; one that finds epochs it did not leave deletes
nothing in the bucket ('mailferry status' and the log say so), since it
would delete the other's mail. Serving and storing mail go on meanwhile.

  - Stop the other database first (or give it a bucket of its own): one that
    still runs leaves new epochs, and the deletions stop again.
  - The other database's epochs become this one's, and its hourly Compact
    deletes again. Every object in the bucket from before now that this
    database does not name is kept: the other database's mail, or the mail
    that arrived after the backup this database was restored from (each is
    the object blobs/<the message's key: its SHA-256, or b3- and its
    BLAKE3 in a store made since session 17>, the message as received).
  - --delete-unnamed lets Compact delete those too (after the usual hour),
    and those an earlier adoption kept: only when that mail is known to be
    of no use.
  - After a move of the database (the SQLite file to a new disk, a pg_dump
    into a new database or cluster) run it too: a moved database deletes
    nothing until then, since a copy run while the store is stopped looks
    the same.

Options:
`

func runStore(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "adopt-bucket" {
		return runAdoptBucket(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "copy" {
		if len(args) > 0 && isHelp(args[0]) {
			fmt.Fprint(stdout, storeCopyUsage())
			return flag.ErrHelp
		}
		return usagef("store: want copy --to TARGET.json or adopt-bucket (see 'mailferry store copy -h', 'mailferry store adopt-bucket -h')")
	}
	fs := newFlags("store copy", stderr)
	var c common
	c.register(fs)
	var to string
	fs.StringVar(&to, "to", "", "configuration file of the target store (database_url, s3_*, data_dir)")
	fs.Usage = func() {
		fmt.Fprint(stderr, storeCopyUsage())
		fs.PrintDefaults()
	}
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("store copy takes no arguments")
	}
	if to == "" {
		return usagef("store copy: --to TARGET.json is required (the configuration naming the target store)")
	}
	from, err := c.load(stderr)
	if err != nil {
		return err
	}
	target, err := core.LoadConfig(to, false)
	if err != nil {
		return usageError{err}
	}
	target.Logger = from.Logger
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	last := time.Time{}
	show := func(p core.StoreCopyProgress, force bool) {
		if !force && time.Since(last) < 2*time.Second {
			return
		}
		last = time.Now()
		secs := max(p.Elapsed.Seconds(), 0.001)
		fmt.Fprintf(stdout, "accounts %d/%d (%d done before), messages %d, %.1f MB, %.1f MB/s, %.0f messages/s\n",
			p.Accounts, p.AccountsTotal, p.Resumed, p.Messages, float64(p.Bytes)/1e6, float64(p.Bytes)/1e6/secs, float64(p.Messages)/secs)
	}
	p, r, err := core.StoreCopy(ctx, from, target, func(p core.StoreCopyProgress) { show(p, false) })
	if p != nil {
		show(*p, true)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("store copy stopped: %w; run the same command again to go on", err)
		}
		if errors.Is(err, core.ErrStoreInUse) || errors.Is(err, core.ErrTargetNotEmpty) || errors.Is(err, core.ErrInvalid) {
			return err
		}
		return fmt.Errorf("%w\nrun the same command again once this is fixed: accounts copied whole are kept, nothing is copied twice", err)
	}
	fmt.Fprintf(stdout, "copied in %s: %d accounts, %d messages, %.1f MB of message bytes, %d queued messages\n",
		p.Elapsed.Round(time.Millisecond), p.Accounts, p.Messages, float64(p.Bytes)/1e6, p.Queue)
	fmt.Fprintf(stdout, "verify: %d accounts, %d mailboxes, %d messages, %d message contents (%.1f MB) read back on both sides\n",
		r.Accounts, r.Mailboxes, r.Messages, r.Blobs, float64(r.Bytes)/1e6)
	if !r.OK() {
		for _, d := range r.Differences {
			fmt.Fprintln(stdout, "  DIFFERENT: "+d)
		}
		return fmt.Errorf("verify found %d differences between the source and the target", r.Count)
	}
	fmt.Fprintln(stdout, "verify: identical")
	return nil
}

// storeCopyUsage is the command's help, with the tables it moves.
func storeCopyUsage() string {
	copied, skipped := core.StoreCopyTables()
	var names []string
	for n := range skipped {
		names = append(names, n)
	}
	sort.Strings(names)
	var sk strings.Builder
	for _, n := range names {
		fmt.Fprintf(&sk, "  %s: %s\n", n, skipped[n])
	}
	var cp strings.Builder
	line := " "
	for i, n := range copied {
		if i < len(copied)-1 {
			n += ","
		}
		if len(line)+1+len(n) > 76 {
			cp.WriteString(line + "\n")
			line = " "
		}
		line += " " + n
	}
	cp.WriteString(line + "\n")
	return fmt.Sprintf(storeCopyHelp, cp.String(), sk.String())
}

func runAdoptBucket(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("store adopt-bucket", stderr)
	var c common
	c.register(fs)
	var deleteUnnamed bool
	fs.BoolVar(&deleteUnnamed, "delete-unnamed", false, "let Compact delete the objects this database does not name, instead of keeping them")
	fs.Usage = func() {
		fmt.Fprint(stderr, adoptBucketHelp)
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("store adopt-bucket takes no arguments")
	}
	cfg, err := c.load(stderr)
	if err != nil {
		return err
	}
	res, err := core.AdoptBucket(context.Background(), cfg, deleteUnnamed)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "bucket adopted: %d epochs of other databases are now this database's; Compact deletes again\n", res.Epochs)
	if deleteUnnamed {
		fmt.Fprintln(stdout, "objects this database does not name: deleted by Compact after the usual hour (--delete-unnamed)")
	} else {
		fmt.Fprintf(stdout, "kept: %d objects (%.1f MB) this database does not name, last modified before %s: never deleted\n",
			res.Kept, float64(res.KeptBytes)/1e6, res.KeepBefore.UTC().Format(time.RFC3339))
	}
	return nil
}
