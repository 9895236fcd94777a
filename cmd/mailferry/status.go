package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"mailferry/core"
)

func runStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	var c common
	c.register(fs)
	var asJSON bool
	fs.BoolVar(&asJSON, "json", false, "print JSON for scripts")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("status takes no arguments")
	}
	co, err := c.open(stderr)
	if err != nil {
		return err
	}
	defer co.Close()
	// The one status model, the dashboard's: read from the store, so it
	// shows the state a running `mailferry serve` committed.
	rep, err := co.Status(context.Background(), &core.StatusOptions{Folders: true})
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tACCOUNT\tMIGRATION\tMESSAGES\tSIZE")
	for _, d := range rep.Domains {
		mig := "migration off"
		if d.Migrating {
			mig = "migration on"
		}
		if d.Migrating {
			if d.KnownListed == 0 {
				mig += ", no user list"
			} else {
				mig += fmt.Sprintf(", %d users listed", d.KnownListed)
			}
			if d.KnownSeen > 0 {
				mig += fmt.Sprintf(" (+%d seen)", d.KnownSeen)
			}
		}
		fmt.Fprintf(tw, "%s\t\t%s\t\t\n", d.Name, mig)
		for _, a := range d.Accounts {
			state := a.StateText()
			if !a.RetryAt.IsZero() {
				state += " until " + a.RetryAt.Format("2006-01-02 15:04:05")
			}
			if a.LastError != "" {
				state += " (" + a.LastError + ")"
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%d\t%s\n", a.Address, state, a.Messages, mb(a.Bytes))
			for _, p := range a.Problems {
				fmt.Fprintf(tw, "\t\tnot copied: %s: %s\t\t\n", p.What(), p.Words)
			}
		}
	}
	tw.Flush()
	fmt.Fprintf(stdout, "relay queue: %d messages (%d held)\n", rep.Queue.Messages, rep.Queue.Held)
	fmt.Fprintln(stdout, "certificate: "+rep.Certificate.Summary())
	fmt.Fprintln(stdout, "store: "+rep.StoreSummary())
	if rep.SweepHeld != "" {
		fmt.Fprintln(stdout, "store: WARNING: deletes nothing in its bucket: "+rep.SweepHeld)
	}
	fmt.Fprintln(stdout, "nodes: "+rep.NodesSummary())
	return nil
}

func runQueue(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("queue: want list, retry ID, hold ID or delete ID")
	}
	sub, args := args[0], args[1:]
	fs := newFlags("queue "+sub, stderr)
	var c common
	c.register(fs)
	var asJSON bool
	if sub == "list" {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	var id int64
	switch sub {
	case "list":
		if fs.NArg() != 0 {
			return usagef("queue list takes no arguments")
		}
	case "retry", "hold", "delete":
		if fs.NArg() != 1 {
			return usagef("queue %s takes one queue ID (see 'mailferry queue list')", sub)
		}
		n, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil || n <= 0 {
			return usagef("queue ID %q is not a number", fs.Arg(0))
		}
		id = n
	default:
		return usagef("queue: unknown subcommand %q (want list, retry, hold or delete)", sub)
	}
	co, err := c.open(stderr)
	if err != nil {
		return err
	}
	defer co.Close()
	ctx := context.Background()
	switch sub {
	case "list":
		q, err := co.Queue(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			if q == nil {
				q = []*core.QueueItem{}
			}
			return json.NewEncoder(stdout).Encode(q)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tFROM\tTO\tSIZE\tTRIES\tNEXT\tLAST ERROR")
		for _, it := range q {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%v\t%d\t%d\t%s\t%s\n", it.ID, it.State, it.From, it.Rcpts, it.Size, it.Attempts,
				it.NextAttempt.Format("2006-01-02 15:04:05"), it.LastError)
		}
		tw.Flush()
	case "retry":
		err = co.QueueRetry(ctx, id)
	case "hold":
		err = co.QueueHold(ctx, id)
	case "delete":
		err = co.QueueDelete(ctx, id)
	}
	if err != nil {
		return storeErr(err)
	}
	if sub != "list" {
		fmt.Fprintf(stdout, "queue item %d: %s done\n", id, sub)
	}
	return nil
}
