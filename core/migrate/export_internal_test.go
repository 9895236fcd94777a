package migrate

import "sync"

// HoldBackgroundHashes takes hashLater's one place for hashes (tests:
// hashes wait until the returned function is called).
func HoldBackgroundHashes(e *Engine) (release func()) {
	e.hashes <- struct{}{}
	var once sync.Once
	return func() { once.Do(func() { <-e.hashes }) }
}
