package imapfront

// What one THREAD REFERENCES (or REFS) may cost, whatever the mailbox
// holds. Each message keeps at most its last maxReferences References
// (sort.go), but a mailbox of 20,000 messages each naming 1,000 distinct
// ones (anyone can send them, 40 KB of header each) made one THREAD hold
// 20 million References and as many containers: GiBs of heap for one
// command of one user. And linking a reference under another walks up
// from the latter to its root (node.reaches, so that no loop is made),
// which a chain hundreds of thousands deep, also written by References,
// made as long as the chain for each link: 10^10 steps and more.
//
// The References taken are bounded over the whole THREAD (refsBudget):
// each message keeps its last share of them, the share halved (from
// maxReferences, at least 1) until all the messages' together are at most
// maxThreadRefs. The last reference is the parent, which threads the
// messages of the mailbox whatever the share: what is lost is only how
// messages under references to messages not in the mailbox are grouped,
// and only in mailboxes whose References pass the bound (100,000 messages
// of 5 each do not). The walks are bounded over the whole THREAD too
// (linkReferences): once they took walkBudget steps, a link that would
// need another walk is not made (as if it made a loop); a real mailbox's
// threads are shallow and walks rare (only a reference to the root of a
// thread already seen), so it never gets there.

// maxThreadRefs is how many References one THREAD takes over all its
// messages, at most (but 1 per message when they are more).
const maxThreadRefs = 500_000

// refsBudget shares maxThreadRefs among a THREAD's messages as they are
// read.
type refsBudget struct {
	share int // References a message keeps: its last ones
	total int // kept by msgs
	msgs  []*sortMsg
}

func newRefsBudget() *refsBudget { return &refsBudget{share: maxReferences} }

// keep sets f.refs to the last of ids the budget lets it keep, and halves
// every message's share while the total passes maxThreadRefs.
func (b *refsBudget) keep(f *sortMsg, ids []string) {
	f.refs = lastRefs(ids, b.share)
	if len(f.refs) == 0 {
		return
	}
	b.total += len(f.refs)
	b.msgs = append(b.msgs, f)
	for b.total > maxThreadRefs && b.share > 1 {
		b.share = max(1, b.share/2)
		b.total = 0
		for _, m := range b.msgs {
			m.refs = lastRefs(m.refs, b.share)
			b.total += len(m.refs)
		}
	}
}

// lastRefs is the last n of ids, copied when fewer than all of them (a
// slice of ids would keep every string of it alive).
func lastRefs(ids []string, n int) []string {
	if len(ids) <= n {
		return ids
	}
	return append([]string(nil), ids[len(ids)-n:]...)
}

// walkBudget is how many steps up a THREAD's links may walk (reaches):
// linear in what it threads.
func walkBudget(msgs []*sortMsg) int {
	n := 1 << 20
	for _, m := range msgs {
		n += 64 * (1 + len(m.refs))
	}
	return n
}
