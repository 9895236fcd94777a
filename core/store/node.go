package store

import (
	"context"
	"fmt"
	"time"
)

// Nodes: every `mailferry serve` on this store says it is alive (NodeBeat)
// every NodeBeat, so that `mailferry status` and the assistant show which
// nodes serve it. A node stopped cleanly removes its row (NodeGone); a
// node that died stays listed, not live, until NodeForget has passed.
// The rows only inform: nothing waits on them (copy leases say who copies).

// NodeBeat is how often a serving node says it is alive; NodeLive how
// long after its last beat a node counts as live; NodeForget how long the
// row of a node not seen is kept.
const (
	NodeBeat   = 10 * time.Second
	NodeLive   = 3 * NodeBeat
	NodeForget = 7 * 24 * time.Hour
)

// maxNodeName bounds a node's name (and its version) in bytes.
const maxNodeName = 200

// Node is a process that serves the store.
type Node struct {
	Name     string    `json:"name"`
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`
	LastSeen time.Time `json:"last_seen"`
}

// Live reports whether the node said it was alive within NodeLive of now.
func (n Node) Live(now time.Time) bool { return now.Sub(n.LastSeen) < NodeLive }

// NodeBeat records that the node name (version, started at started) is
// alive now, and forgets nodes not seen for NodeForget.
func (s *Store) NodeBeat(ctx context.Context, name, version string, started time.Time) error {
	if name == "" || len(name) > maxNodeName || len(version) > maxNodeName {
		return fmt.Errorf("%w: node name %q, version %q", ErrInvalid, Printable(name, 80), Printable(version, 80))
	}
	return s.write(ctx, func(tx wtx, _ *changes) error {
		// The database's clock, so that nodes whose clocks disagree read
		// one another's beats alike (Nodes, clock.go).
		now, err := s.dbNow(ctx, tx)
		if err != nil {
			return fmt.Errorf("store: node %q: %w", Printable(name, 80), err)
		}
		started := s.toDB(started)
		if _, err := tx.ExecContext(ctx, `
INSERT INTO nodes(name, version, started, last_seen) VALUES (?, ?, ?, ?)
ON CONFLICT(name) DO UPDATE SET version = excluded.version, started = excluded.started, last_seen = excluded.last_seen`,
			name, version, started.UnixMilli(), now.UnixMilli()); err != nil {
			return fmt.Errorf("store: node %q: %w", Printable(name, 80), err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM nodes WHERE last_seen < ?`, now.Add(-NodeForget).UnixMilli()); err != nil {
			return fmt.Errorf("store: forget old nodes: %w", err)
		}
		return nil
	})
}

// NodeGone removes the node's row: it stopped cleanly.
func (s *Store) NodeGone(ctx context.Context, name string) error {
	return s.write(ctx, func(tx wtx, _ *changes) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM nodes WHERE name = ?`, name); err != nil {
			return fmt.Errorf("store: node %q gone: %w", Printable(name, 80), err)
		}
		return nil
	})
}

// Nodes lists the nodes that said they serve the store, by name, their
// times on this node's clock (they are kept on the database's).
func (s *Store) Nodes(ctx context.Context) ([]Node, error) {
	return queryAll(ctx, s.r, func(r rowScanner) (Node, error) {
		var n Node
		var started, seen int64
		err := r.Scan(&n.Name, &n.Version, &started, &seen)
		n.Started, n.LastSeen = s.fromDB(time.UnixMilli(started)), s.fromDB(time.UnixMilli(seen))
		return n, err
	}, `SELECT name, version, started, last_seen FROM nodes ORDER BY name`)
}
