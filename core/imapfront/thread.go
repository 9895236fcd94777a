package imapfront

import (
	"sort"
	"strconv"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// THREAD (RFC 5256 4): ORDEREDSUBJECT groups by base subject; REFERENCES
// is the algorithm of RFC 5256 (after Jamie Zawinski's) over Message-ID,
// References and In-Reply-To, then base subjects. Siblings go by sent date,
// ties by sequence number. Built on the messages a search finds (found).

// Thread implements imapserver.SessionThread (RFC 5256 THREAD).
func (s *session) Thread(kind imapserver.NumKind, criteria *imap.SearchCriteria, alg imap.ThreadAlgorithm) ([]imapserver.ThreadData, error) {
	byRefs := alg == imap.ThreadReferences || alg == threadRefs
	msgs, err := s.found(criteria, byRefs, "THREAD")
	if err != nil {
		return nil, err
	}
	var roots []*node
	switch alg {
	case imap.ThreadReferences:
		roots = threadReferences(msgs)
	case threadRefs:
		roots = threadRefsLatest(msgs)
	default:
		roots = threadOrderedSubject(msgs)
	}
	out := make([]imapserver.ThreadData, len(roots))
	for i, r := range roots {
		out[i] = r.data(kind)
	}
	return out, nil
}

// node is a container of the threading algorithms: a message, or a dummy
// (msg nil) standing for a message that is referred to but not found.
type node struct {
	msg      *sortMsg
	parent   *node
	children []*node
}

// data turns a thread into its response form: a chain while each node has
// one child, then the subthreads.
func (n *node) data(kind imapserver.NumKind) imapserver.ThreadData {
	var d imapserver.ThreadData
	for {
		if n.msg != nil {
			d.Chain = append(d.Chain, n.msg.num(kind))
		}
		if len(n.children) == 1 && (n.msg != nil || len(d.Chain) > 0) {
			n = n.children[0]
			continue
		}
		break
	}
	for _, c := range n.children {
		d.SubThreads = append(d.SubThreads, c.data(kind))
	}
	if len(d.Chain) == 0 && len(d.SubThreads) == 1 {
		return d.SubThreads[0]
	}
	return d
}

// date is the sent date that orders a node: its message's, or for a dummy
// its first child's (RFC 5256 REFERENCES step 6).
func (n *node) date() (d int64, seq uint32) {
	for n.msg == nil && len(n.children) > 0 {
		n = n.children[0]
	}
	if n.msg == nil {
		return 0, 0
	}
	return n.msg.sentDate().UnixNano(), n.msg.seq
}

// sortNodes orders siblings by sent date then sequence number, children
// first (so a dummy's date is its earliest child's).
func sortNodes(l []*node) {
	for _, n := range l {
		sortNodes(n.children)
	}
	sort.SliceStable(l, func(i, j int) bool {
		di, si := l[i].date()
		dj, sj := l[j].date()
		if di != dj {
			return di < dj
		}
		return si < sj
	})
}

// threadOrderedSubject: sort by base subject then sent date; each group of
// one base subject is a thread whose first message is the parent of the
// others; threads go by their first message's sent date.
func threadOrderedSubject(msgs []*sortMsg) []*node {
	groups := map[string]*node{}
	var roots []*node
	sorted := append([]*sortMsg(nil), msgs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		di, dj := sorted[i].sentDate(), sorted[j].sentDate()
		if !di.Equal(dj) {
			return di.Before(dj)
		}
		return sorted[i].seq < sorted[j].seq
	})
	for _, m := range sorted {
		base, _ := baseSubject(m.env.Subject)
		key := asciiLower(base)
		n := &node{msg: m}
		if root := groups[key]; root != nil {
			n.parent = root
			root.children = append(root.children, n)
			continue
		}
		groups[key] = n
		roots = append(roots, n)
	}
	return roots
}

// threadReferences is RFC 5256's REFERENCES algorithm.
func threadReferences(msgs []*sortMsg) []*node {
	roots := linkReferences(msgs)
	// Step 4: prune dummies.
	roots = prune(roots, true)
	// Step 5: gather by base subject.
	roots = bySubject(roots)
	// Step 6: sort.
	sortNodes(roots)
	return roots
}

// linkReferences is steps 1 and 2 of RFC 5256's REFERENCES algorithm: the
// messages linked by Message-ID, References and In-Reply-To, and the root
// set (dummies not yet pruned).
func linkReferences(msgs []*sortMsg) []*node {
	ids := map[string]*node{}
	walk := walkBudget(msgs) // thread_bound.go
	// Step 1: a container per Message-ID; duplicates and messages without
	// one get a unique ID of their own.
	for _, m := range msgs {
		id := ""
		if m.env != nil {
			id = m.env.MessageID
		}
		if id == "" || ids[id] != nil && ids[id].msg != nil {
			id = "\x00" + strconv.FormatUint(uint64(m.uid), 10)
		}
		n := ids[id]
		if n == nil {
			n = &node{}
			ids[id] = n
		}
		n.msg = m
		// 1A: link the references as a chain, keeping existing links and
		// making no loop.
		var prev *node
		for _, ref := range m.refs {
			r := ids[ref]
			if r == nil {
				r = &node{}
				ids[ref] = r
			}
			if prev != nil && r.parent == nil && r != prev && !r.reaches(prev, &walk) {
				link(prev, r)
			}
			prev = r
		}
		// 1B: the last reference is the parent, replacing any other.
		if n.parent != nil {
			unlink(n)
		}
		if prev != nil && prev != n && !n.reaches(prev, &walk) {
			link(prev, n)
		}
	}
	// Step 2: the root set, the containers without a parent (each found
	// once; walking up from every container to its root was quadratic in
	// a chain's length: one message of 300,000 References, minutes).
	var roots []*node
	for _, n := range ids {
		if n.parent == nil {
			roots = append(roots, n)
		}
	}
	return cutDeep(roots)
}

// reaches reports whether target is n or one of its descendants, walking
// up from target: a walk down n's descendants recursed as deep as the
// chain (a chain of millions of containers, as References can write it,
// could pass Go's stack limit, which ends the process, not the session).
// Each step up is taken from *budget; once it is spent, reaches says yes
// (the link is not made, as if it made a loop: thread_bound.go).
func (n *node) reaches(target *node, budget *int) bool {
	if len(n.children) == 0 {
		return n == target
	}
	for t := target; t != nil; t = t.parent {
		if t == n {
			return true
		}
		if *budget--; *budget < 0 {
			return true
		}
	}
	return false
}

// maxThreadDepth is how deep a thread may go; a container deeper becomes
// a root of its own (cutDeep). What follows step 2 (prune, sortNodes,
// data, the response's writer) recurses as deep as a thread goes, and
// References chain into threads as deep as an attacker writes them.
const maxThreadDepth = 10000

// cutDeep makes the children of every container maxThreadDepth below a
// root roots of their own, walking the threads without recursion, and
// returns the roots.
func cutDeep(roots []*node) []*node {
	type at struct {
		n     *node
		depth int
	}
	stack := make([]at, 0, len(roots))
	for _, r := range roots {
		stack = append(stack, at{r, 0})
	}
	for len(stack) > 0 {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		depth := top.depth + 1
		children := top.n.children
		if depth > maxThreadDepth {
			top.n.children = nil
			for _, c := range children {
				c.parent = nil
			}
			roots = append(roots, children...)
			depth = 0
		}
		for _, c := range children {
			stack = append(stack, at{c, depth})
		}
	}
	return roots
}

func link(parent, child *node) {
	child.parent = parent
	parent.children = append(parent.children, child)
}

func unlink(n *node) {
	p := n.parent
	for i, c := range p.children {
		if c == n {
			p.children = append(p.children[:i:i], p.children[i+1:]...)
			break
		}
	}
	n.parent = nil
}

// prune drops dummies without children and promotes the children of the
// others (RFC 5256 REFERENCES step 4); among roots a dummy with several
// children stays.
func prune(l []*node, top bool) []*node {
	var out []*node
	for _, n := range l {
		n.children = prune(n.children, false)
		for _, c := range n.children {
			c.parent = n
		}
		if n.msg != nil {
			out = append(out, n)
			continue
		}
		switch {
		case len(n.children) == 0:
		case top && len(n.children) > 1:
			out = append(out, n)
		default:
			for _, c := range n.children {
				c.parent = n.parent
			}
			out = append(out, n.children...)
		}
	}
	return out
}

// subjectOf is a root's thread subject: its message's, or a dummy's first
// child's.
func (n *node) subjectOf() (base string, reply bool, ok bool) {
	m := n.msg
	if m == nil && len(n.children) > 0 {
		sortNodes(n.children)
		m = n.children[0].msg
	}
	if m == nil || m.env == nil {
		return "", false, false
	}
	base, reply = baseSubject(m.env.Subject)
	return asciiLower(base), reply, base != ""
}

// isReply reports whether message n's subject marks a reply or forward.
// bySubject asks it of the table's root for each root of its subject, only
// where that root is a message: subjectOf of a dummy sorts its children,
// and a dummy of 4,000 replies with 4,000 roots of the same subject took
// 0.87 s, quadratic (TestThreadSubjectGatheringLinear).
func isReply(n *node) bool {
	if n.msg == nil || n.msg.env == nil {
		return false
	}
	_, reply := baseSubject(n.msg.env.Subject)
	return reply
}

// bySubject gathers roots of one base subject (RFC 5256 REFERENCES step 5).
func bySubject(roots []*node) []*node {
	table := map[string]*node{}
	for _, r := range roots {
		subj, reply, ok := r.subjectOf()
		if !ok {
			continue
		}
		cur := table[subj]
		if cur == nil {
			table[subj] = r
			continue
		}
		if cur.msg != nil && (r.msg == nil || isReply(cur) && !reply) {
			table[subj] = r
		}
	}
	var out []*node
	at := map[*node]int{} // where a table root is in out (a scan of out for
	// each subject was quadratic: 20,000 subjects of two messages, 0.47 s)
	for _, r := range roots {
		if r.parent != nil {
			continue // merged under another root already
		}
		subj, reply, ok := r.subjectOf()
		t := table[subj]
		if !ok || t == r || t == nil {
			if ok && t == r {
				at[r] = len(out)
			}
			out = append(out, r)
			continue
		}
		switch {
		case t.msg == nil && r.msg == nil:
			for _, c := range r.children {
				link(t, c)
			}
		case t.msg == nil:
			link(t, r)
		case reply && !isReply(t): // t a message here
			link(t, r)
		default:
			// A new dummy holds both and takes the table message's place.
			d := &node{}
			table[subj] = d
			if i, placed := at[t]; placed {
				out[i] = d
				at[d] = i
			} else {
				at[d] = len(out)
				out = append(out, d)
			}
			link(d, t)
			link(d, r)
		}
	}
	return out
}
