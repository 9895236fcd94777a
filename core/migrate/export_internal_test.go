package migrate

import (
	"context"
	"sync"
)

// HoldBackgroundHashes takes hashLater's places for hashes, its one
// place and those of hashes told to go now (tests: hashes wait until the
// returned function is called).
func HoldBackgroundHashes(e *Engine) (release func()) {
	e.hashes <- struct{}{}
	for range cap(e.wide) {
		e.wide <- struct{}{}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-e.hashes
			for range cap(e.wide) {
				<-e.wide
			}
		})
	}
}

// HoldOneHashAtATime takes hashLater's one place for hashes only (tests:
// hashes told to go now still go).
func HoldOneHashAtATime(e *Engine) (release func()) {
	e.hashes <- struct{}{}
	var once sync.Once
	return func() { once.Do(func() { <-e.hashes }) }
}

// HoldsCopies says whether first logins at domain's old server hold its
// copy work now (logingate.go: a hold has begun and not ended).
func HoldsCopies(e *Engine, domain string) bool {
	s, err := migratingSettings(context.Background(), e.st, domain)
	if err != nil {
		return false
	}
	return e.limits(s).logins.holds()
}
