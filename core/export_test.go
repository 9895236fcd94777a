package core

import "mailferry/core/store"

// StoreOf is the store of c, for tests that set up data the door does
// not offer.
func StoreOf(c *Core) *store.Store { return c.store }
