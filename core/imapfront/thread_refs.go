package imapfront

import (
	"sort"

	"github.com/emersion/go-imap/v2"
)

// THREAD=REFS (draft-ietf-morg-inthread; Dovecot 2.3 offers it, and
// SnappyMail's and RainLoop's IMAP clients pick it first when advertised):
// REFERENCES without gathering threads by subject (RFC 5256 REFERENCES step
// 5 skipped), the threads ordered by their most recent message, so that the
// thread last written to comes last. As Dovecot 2.3 orders them
// (index-thread-finish.c, sort_root_nodes_ref2): a thread's date is the
// latest sent date (INTERNALDATE without a Date) of its messages, ties by
// the UID of its first message, 0 for a thread under a dummy (a message
// referred to but not in the result); within a thread siblings go by sent
// date as in REFERENCES.

// threadRefs is THREAD=REFS' algorithm name.
const threadRefs imap.ThreadAlgorithm = "REFS"

// threadRefsLatest is the REFS algorithm.
func threadRefsLatest(msgs []*sortMsg) []*node {
	type root struct {
		n      *node
		latest int64
		uid    uint32
	}
	var roots []root
	for _, r := range linkReferences(msgs) {
		dummy := r.msg == nil
		// Step 4 on this thread alone: a root dummy with one child is
		// promoted, which orders like Dovecot's kept dummy but for the tie.
		for _, p := range prune([]*node{r}, true) {
			sortNodes(p.children)
			rt := root{n: p, latest: p.latest()}
			if !dummy && p.msg != nil {
				rt.uid = uint32(p.msg.uid)
			}
			roots = append(roots, rt)
		}
	}
	sort.SliceStable(roots, func(i, j int) bool {
		if roots[i].latest != roots[j].latest {
			return roots[i].latest < roots[j].latest
		}
		return roots[i].uid < roots[j].uid
	})
	out := make([]*node, len(roots))
	for i, r := range roots {
		out[i] = r.n
	}
	return out
}

// latest is the latest sent date of the messages under n, n included.
func (n *node) latest() int64 {
	var d int64
	if n.msg != nil {
		d = n.msg.sentDate().Unix() // whole seconds, as Dovecot
	}
	for _, c := range n.children {
		d = max(d, c.latest())
	}
	return d
}
