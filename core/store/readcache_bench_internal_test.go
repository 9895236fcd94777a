package store

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readSyscalls is this process's count of read system calls (read, pread
// and the like: /proc/self/io's syscr).
func readSyscalls(tb testing.TB) int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		tb.Skip("no /proc/self/io:", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "syscr: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	tb.Skip("no syscr in /proc/self/io")
	return 0
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReadAfterCommit is a FETCH's reads (the rows of 10 messages,
// EachMessageLocated, then the poll's Delta) on a 2,000-message INBOX,
// with another connection's commit (a flag change) before each
// ("commit") or none ("nocommit"): every commit makes SQLite drop the
// readers' page caches, so each read after one reads its pages again.
// "commit-noread" is the commits alone (the CPU they take out of
// "commit"'s), "commit-rows" and "commit-delta" each of the two reads
// alone after a commit, "commit-mmap" is "commit" with PRAGMA mmap_size 256 MiB on
// every reader connection. Reported: read system calls per op (/proc/self/io syscr,
// the whole process), the process's CPU per op (the commit's included)
// and the reads' own wall time (read-ns/op, the commit's left out).
func BenchmarkReadAfterCommit(b *testing.B) {
	sqliteOnly(b)
	const n = 2000
	s, mb, uids := inboxStore(b, &Options{ChangePoll: -1}, n)
	ctx := context.Background()
	each := func(m *Message) error { return nil }
	for _, v := range []string{"nocommit", "commit", "commit-noread", "commit-rows", "commit-delta", "commit-mmap"} {
		b.Run(v, func(b *testing.B) {
			if v == "commit-mmap" {
				setReaderPragma(b, s, "PRAGMA mmap_size = 268435456")
				defer setReaderPragma(b, s, "PRAGMA mmap_size = 0")
			}
			d, err := s.Delta(ctx, mb.ID, 1)
			if err != nil {
				b.Fatal(err)
			}
			since := d.HighestModSeq
			sys0, cpu0 := readSyscalls(b), processCPU()
			var reads time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if v != "nocommit" {
					// $K set on a message, then taken off it: a change,
					// and a commit, each time.
					op, k := FlagsAdd, (i/2*7)%n
					if i%2 == 1 {
						op = FlagsRemove
					}
					if _, err := s.StoreFlags(ctx, mb.ID, uids[k:k+1], op, []string{"$K"}); err != nil {
						b.Fatal(err)
					}
				}
				if v == "commit-noread" {
					continue
				}
				t0 := time.Now()
				j := (i * 13) % (n - 10)
				if v != "commit-delta" {
					if err := s.EachMessageLocated(ctx, mb.ID, uids[j], uids[j+9], true, each); err != nil {
						b.Fatal(err)
					}
				}
				if v != "commit-rows" {
					d, err := s.Delta(ctx, mb.ID, since)
					if err != nil {
						b.Fatal(err)
					}
					since = d.HighestModSeq
				}
				reads += time.Since(t0)
			}
			b.StopTimer()
			b.ReportMetric(float64(readSyscalls(b)-sys0)/float64(b.N), "reads/op")
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
			b.ReportMetric(float64(reads.Nanoseconds())/float64(b.N), "read-ns/op")
		})
	}
}

// setReaderPragma runs pragma on every reader connection (all held at
// once, so that each is a different one; the pool keeps them open).
func setReaderPragma(tb testing.TB, s *Store, pragma string) {
	tb.Helper()
	var held []*readTx
	defer func() {
		for _, rt := range held {
			rt.c.Close()
		}
	}()
	for range s.r.Stats().MaxOpenConnections {
		c, err := s.r.Conn(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		held = append(held, &readTx{c: c})
		if _, err := c.ExecContext(context.Background(), pragma); err != nil {
			tb.Fatal(err)
		}
	}
}
