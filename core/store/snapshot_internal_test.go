package store

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// rowSnapshot reads a snapshot row by row, the way Snapshot falls back to.
func rowSnapshot(t *testing.T, s *Store, mailboxID int64, since uint64) *Snapshot {
	t.Helper()
	rows, err := s.r.Query(`SELECT uid, flags, modseq FROM messages WHERE mailbox_id = ? ORDER BY uid`, mailboxID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var snap Snapshot
	for rows.Next() {
		var uid uint32
		var flags string
		var modseq uint64
		if err := rows.Scan(&uid, &flags, &modseq); err != nil {
			t.Fatal(err)
		}
		snap.add(uid, modseq, flags, since)
	}
	return &snap
}

// TestSnapshotPacked: the snapshot read as one string (readPacked) equals
// the rows read one by one, for every MODSEQ asked, with flags of all
// kinds, gaps in UIDs and expunged messages; and a row that breaks the
// packed format (a line break in flags, written behind the store's back)
// makes Snapshot read row by row rather than misread it.
func TestSnapshotPacked(t *testing.T) {
	s, mb, uids := inboxStore(t, nil, 60)
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(1, 2))
	kinds := [][]string{nil, {`\Seen`}, {`\Seen`, `\Flagged`, "$Label1"}, {"ünïcode", "$Junk"}, {`\Answered`, `\Draft`, `\Deleted`, "a.b-c_d"}}
	for i := 0; i < 200; i++ {
		u := uids[rnd.IntN(len(uids))]
		if _, err := s.StoreFlags(ctx, mb.ID, []uint32{u}, FlagsSet, kinds[rnd.IntN(len(kinds))]); err != nil {
			t.Fatal(err)
		}
	}
	// Gaps: expunge a few.
	if _, err := s.StoreFlags(ctx, mb.ID, []uint32{uids[3], uids[17], uids[40]}, FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, mb.ID, []uint32{uids[3], uids[17], uids[40]}); err != nil {
		t.Fatal(err)
	}
	full, err := s.Snapshot(ctx, mb.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(full.UIDs) != 57 {
		t.Fatalf("%d UIDs, want 57", len(full.UIDs))
	}
	for _, since := range []uint64{0, 1, full.HighestModSeq / 2, full.HighestModSeq - 1} {
		got, err := s.Snapshot(ctx, mb.ID, since)
		if err != nil {
			t.Fatal(err)
		}
		want := rowSnapshot(t, s, mb.ID, since)
		if !reflect.DeepEqual(got.UIDs, want.UIDs) || !reflect.DeepEqual(got.Changed, want.Changed) {
			t.Fatalf("since %d: packed snapshot differs from the rows\n got %v\n%v\nwant %v\n%v", since, got.UIDs, got.Changed, want.UIDs, want.Changed)
		}
	}
	// A line break in one message's flags: the packed string has one line
	// more than the mailbox has messages, and Snapshot reads the rows.
	forged := fmt.Sprintf("x\n%d 999999 \\Seen", uids[5]+1000)
	if _, err := s.w.Exec(`UPDATE messages SET flags = ? WHERE mailbox_id = ? AND uid = ?`, forged, mb.ID, uids[5]); err != nil {
		t.Fatal(err)
	}
	var probe Snapshot
	tx, err := s.beginRead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := probe.readPacked(ctx, tx, mb.ID, 0)
	tx.end()
	if err != nil || ok {
		t.Fatalf("readPacked of a forged row: ok %v, err %v; want a fall back", ok, err)
	}
	got, err := s.Snapshot(ctx, mb.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := rowSnapshot(t, s, mb.ID, 0)
	if !reflect.DeepEqual(got.UIDs, want.UIDs) || !reflect.DeepEqual(got.Changed, want.Changed) {
		t.Fatalf("snapshot with a forged row differs from the rows")
	}
	// An empty mailbox.
	if _, err := s.StoreFlags(ctx, mb.ID, got.UIDs, FlagsSet, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, mb.ID, got.UIDs); err != nil {
		t.Fatal(err)
	}
	if e, err := s.Snapshot(ctx, mb.ID, 0); err != nil || len(e.UIDs) != 0 || len(e.Changed) != 0 {
		t.Fatalf("empty mailbox: %+v, %v", e, err)
	}
}

// TestSnapshotUsesIndex: the snapshot query reads the covering index
// messages_snapshot, not the message rows.
func TestSnapshotUsesIndex(t *testing.T) {
	s, mb, _ := inboxStore(t, nil, 3)
	plan := queryPlan(t, s, packedSnapshotQuery, mb.ID)
	if !slices.ContainsFunc(plan, func(d string) bool { return strings.Contains(d, "COVERING INDEX messages_snapshot") }) {
		t.Fatalf("snapshot query plan %q does not read the covering index", plan)
	}
}

// BenchmarkSnapshot2000: a SELECT's snapshot of 2,000 messages.
func BenchmarkSnapshot2000(b *testing.B) {
	// Summaries as large as real messages' ENVELOPE and BODYSTRUCTURE.
	summary := func([]byte) ([]byte, []byte) { return bytes.Repeat([]byte("e"), 600), bytes.Repeat([]byte("s"), 400) }
	s, mb, _ := inboxStore(b, &Options{ChangePoll: -1, Summarize: summary}, 0)
	ctx := context.Background()
	tx, _ := s.Begin(ctx)
	for i := 0; i < 2000; i++ {
		if _, err := tx.Append(mb.ID, &NewMessage{Body: []byte(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i)), Flags: []string{`\Seen`, "$Label1"}}); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if os.Getenv("IMAP_EXP_INDEX") != "" {
		if _, err := s.w.Exec(os.Getenv("IMAP_EXP_INDEX")); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if snap, err := s.Snapshot(ctx, mb.ID, 0); err != nil || len(snap.UIDs) != 2000 {
			b.Fatal(err)
		}
	}
}

// queryPlan returns SQLite's EXPLAIN QUERY PLAN details of q.
func queryPlan(t *testing.T, s *Store, q string, args ...any) []string {
	t.Helper()
	rows, err := s.r.Query(`EXPLAIN QUERY PLAN `+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

// TestDeltaReadsModSeqRange: a poll's Delta reads the changed messages by
// the range of messages_modseq, not every message of the mailbox, and
// still gives them in UID order when their MODSEQs are in another.
func TestDeltaReadsModSeqRange(t *testing.T) {
	s, mb, uids := inboxStore(t, nil, 6)
	ctx := context.Background()
	plan := queryPlan(t, s, deltaChangedQuery, mb.ID, 3)
	if !slices.ContainsFunc(plan, func(d string) bool { return strings.Contains(d, "messages_modseq (mailbox_id=? AND modseq>?)") }) {
		t.Fatalf("Delta's query plan %q does not read a MODSEQ range of messages_modseq", plan)
	}
	plan = queryPlan(t, s, deltaExpungedQuery, mb.ID, 3)
	if !slices.ContainsFunc(plan, func(d string) bool { return strings.Contains(d, "expunged_modseq (mailbox_id=? AND modseq>?)") }) {
		t.Fatalf("Delta's expunged query plan %q does not read a MODSEQ range of expunged_modseq", plan)
	}
	base, err := s.Snapshot(ctx, mb.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Changed in the order 5, 1, 3 (MODSEQ ascending), wanted in UID order.
	for _, i := range []int{4, 0, 2} {
		if _, err := s.StoreFlags(ctx, mb.ID, []uint32{uids[i]}, FlagsAdd, []string{`\Flagged`}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := s.Delta(ctx, mb.ID, base.HighestModSeq)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint32
	for _, c := range d.Changed {
		got = append(got, c.UID)
	}
	if want := []uint32{uids[0], uids[2], uids[4]}; !slices.Equal(got, want) {
		t.Fatalf("Delta changed %v, want %v (UID order)", got, want)
	}
	if d.Messages != len(uids) {
		t.Fatalf("Delta counts %d messages, want %d", d.Messages, len(uids))
	}
	// Expunged in the order 6, 2 (MODSEQ ascending), wanted ascending.
	for _, i := range []int{5, 1} {
		if _, err := s.StoreFlags(ctx, mb.ID, []uint32{uids[i]}, FlagsAdd, []string{`\Deleted`}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Expunge(ctx, mb.ID, []uint32{uids[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if d, err = s.Delta(ctx, mb.ID, base.HighestModSeq); err != nil {
		t.Fatal(err)
	}
	if want := []uint32{uids[1], uids[5]}; !slices.Equal(d.Expunged, want) {
		t.Fatalf("Delta expunged %v, want %v (ascending)", d.Expunged, want)
	}
}

// BenchmarkDelta2000: a poll's Delta on a 2,000-message mailbox where 10
// messages changed.
func BenchmarkDelta2000(b *testing.B) {
	s, err := Open(b.TempDir()+"/mail.db", &Options{ChangePoll: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	s.CreateDomain(ctx, "example.test")
	a, err := s.CreateAccount(ctx, "u@example.test", "pw", nil)
	if err != nil {
		b.Fatal(err)
	}
	mb, _ := s.Mailbox(ctx, a.ID, "INBOX")
	tx, _ := s.Begin(ctx)
	var uids []uint32
	for i := 0; i < 2000; i++ {
		m, err := tx.Append(mb.ID, &NewMessage{Body: []byte(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i)), Flags: []string{`\Seen`}})
		if err != nil {
			b.Fatal(err)
		}
		uids = append(uids, m.UID)
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	snap, err := s.Snapshot(ctx, mb.ID, 0)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := s.StoreFlags(ctx, mb.ID, []uint32{uids[i*190]}, FlagsAdd, []string{"$K"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if d, err := s.Delta(ctx, mb.ID, snap.HighestModSeq); err != nil || len(d.Changed) != 10 {
			b.Fatal(d, err)
		}
	}
}
