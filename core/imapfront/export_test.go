package imapfront

// SelectFullReads is how many times s's SELECTs read a mailbox whole
// (selectCache) rather than what changed since the last one.
func SelectFullReads(s *Server) int64 { return s.selects.fullReads.Load() }

// SetSelectCacheValidity makes the state s keeps of mailbox mb claim
// UIDVALIDITY v, as if mb's id had been given to a new mailbox; false
// when s keeps none.
func SetSelectCacheValidity(s *Server, mb int64, v uint32) bool {
	c := s.selects
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[mb]
	if e == nil {
		return false
	}
	n := *e.st
	n.validity = v
	e.st = &n
	return true
}

// SetSelectCacheBudget sets how many messages s's select cache holds.
func SetSelectCacheBudget(s *Server, n int) {
	s.selects.mu.Lock()
	s.selects.budget = n
	s.selects.mu.Unlock()
}

// SelectCacheHolds reports the mailboxes s's select cache holds.
func SelectCacheHolds(s *Server) []int64 {
	c := s.selects
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []int64
	for id := range c.entries {
		ids = append(ids, id)
	}
	return ids
}

// SearchUpdateCounts is how many messages UPDATE searches matched again
// and how many message bodies they read for that, since the process began
// (context.go).
func SearchUpdateCounts() (evaluated, loaded int64) {
	return searchUpdateEvaluations.Load(), searchUpdateLoads.Load()
}

// AppendHeld is what account acct's APPENDs in progress hold of s's
// APPEND memory bound (appendMem).
func AppendHeld(s *Server, acct int64) int64 {
	s.appending.mu.Lock()
	defer s.appending.mu.Unlock()
	return s.appending.acct[acct]
}

// OpenSessions is how many of s's sessions have begun and not ended.
func OpenSessions(s *Server) int64 { return s.open.Load() }

// HangupWatches is how many times connections were watched for a hang-up
// during a command (hangup.go), since the process began.
func HangupWatches() int64 { return hangupWatches.Load() }
