package core

import (
	"context"
	"time"

	"mailferry/core/store"
)

// A serving Core is a node: it says it is alive in the store's nodes table
// every store.NodeBeat (under Config.NodeName), so that every node, `mailferry
// status` and the assistant list the nodes serving one database; a clean
// Close removes it from the table.

// NodeStatus is one node of Status.Nodes.
type NodeStatus struct {
	store.Node
	// Live: the node said it was alive within store.NodeLive.
	Live bool `json:"live"`
	// Self: this process's node.
	Self bool `json:"self"`
}

// nodeBeat is the "node" service: a beat now and every store.NodeBeat. A
// failed beat is logged, not fatal: the table only informs.
func (c *Core) nodeBeat(ctx context.Context) error {
	c.mu.Lock()
	if c.started.IsZero() {
		c.started = time.Now()
	}
	started := c.started
	c.mu.Unlock()
	t := time.NewTicker(store.NodeBeat)
	defer t.Stop()
	for {
		if err := c.store.NodeBeat(ctx, c.cfg.NodeName, c.cfg.Version, started); err != nil && ctx.Err() == nil {
			c.log.Warn("node: cannot say this node is alive", "node", c.cfg.NodeName, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// nodeGone removes this node from the nodes table if it served.
func (c *Core) nodeGone() {
	c.mu.Lock()
	served := !c.started.IsZero()
	c.mu.Unlock()
	if !served {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.store.NodeGone(ctx, c.cfg.NodeName); err != nil {
		c.log.Warn("node: cannot say this node stopped", "node", c.cfg.NodeName, "err", err)
	}
}

// nodes reads the nodes table for Status.
func (c *Core) nodes(ctx context.Context, now time.Time) ([]NodeStatus, error) {
	ns, err := c.store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]NodeStatus, 0, len(ns))
	for _, n := range ns {
		n.Name, n.Version = store.Printable(n.Name, 200), store.Printable(n.Version, 200)
		out = append(out, NodeStatus{Node: n, Live: n.Live(now), Self: n.Name == c.cfg.NodeName})
	}
	return out, nil
}
