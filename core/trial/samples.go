package trial

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"mailferry/core/demo"
	"mailferry/core/oldserver"
)

// SampleCopy is where a sample message landed on a server, and what that
// server served for it.
type SampleCopy struct {
	// Name is the demo.Sample name ("plain", "html", "lang-de", ...).
	Name         string
	UID          uint32
	UIDValidity  uint32
	Flags        []string
	InternalDate time.Time
	Size         int64
	// SHA256 is the hex digest of the exact bytes served (BODY.PEEK[]).
	SHA256 string
	// Raw is the message as served.
	Raw []byte
}

// SendSamples builds the sample messages (one plain, one HTML, one per
// language code) from and to address and sends them through the old
// server's SMTP without authentication (RFC 5321), one transaction each.
// It returns the samples sent; on error, the ones sent before it.
func SendSamples(ctx context.Context, s oldserver.Settings, address string, languages []string) ([]demo.Sample, error) {
	samples := demo.Samples(address, address, languages, time.Now())
	cl, err := oldserver.DialSMTP(ctx, s, nil)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	stop := context.AfterFunc(ctx, func() { cl.Close() })
	defer stop()
	var sent []demo.Sample
	for _, sm := range samples {
		if err := cl.SendMail(address, []string{address}, bytes.NewReader(sm.Raw)); err != nil {
			if ctx.Err() != nil {
				return sent, ctx.Err()
			}
			return sent, fmt.Errorf("sending the %s sample through the old server's SMTP: %w", sm.Name, err)
		}
		sent = append(sent, sm)
	}
	_ = cl.Quit()
	return sent, nil
}

// WaitForSamples logs in to the old server's IMAP as address and polls its
// INBOX (read-only, EXAMINE) until every sample is there, found by its
// Message-ID; progress (if not nil) is called with the count found. It
// returns what the old server serves for each sample, in the order of
// samples. ctx bounds the wait.
func WaitForSamples(ctx context.Context, s oldserver.Settings, address, password string, samples []demo.Sample, progress func(found, total int)) ([]SampleCopy, error) {
	cl, done, err := loginOld(ctx, s, address, password)
	if err != nil {
		return nil, err
	}
	defer done()
	found := make([]*SampleCopy, len(samples))
	n := 0
	for {
		sel, err := cl.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return nil, ctxErr(ctx, fmt.Errorf("old server: EXAMINE INBOX: %w", err))
		}
		for i, sm := range samples {
			if found[i] != nil {
				continue
			}
			cp, err := fetchSample(cl, sm)
			if err != nil {
				return nil, ctxErr(ctx, fmt.Errorf("old server: %w", err))
			}
			if cp != nil {
				cp.UIDValidity = sel.UIDValidity
				found[i] = cp
				n++
			}
		}
		if progress != nil {
			progress(n, len(samples))
		}
		if n == len(samples) {
			break
		}
		if err := cl.Unselect().Wait(); err != nil {
			return nil, ctxErr(ctx, fmt.Errorf("old server: %w", err))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%d of %d samples arrived on the old server: %w", n, len(samples), ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	_ = cl.Logout().Wait()
	out := make([]SampleCopy, len(found))
	for i, f := range found {
		out[i] = *f
	}
	return out, nil
}

// fetchSample finds sm in the selected mailbox by Message-ID and fetches it;
// nil when it is not there. More than one copy is an error.
func fetchSample(cl *imapclient.Client, sm demo.Sample) (*SampleCopy, error) {
	data, err := cl.UIDSearch(&imap.SearchCriteria{
		Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: sm.MessageID}},
	}, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("UID SEARCH for the %s sample: %w", sm.Name, err)
	}
	uids := data.AllUIDs()
	switch len(uids) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, fmt.Errorf("the %s sample is there %d times", sm.Name, len(uids))
	}
	body := &imap.FetchItemBodySection{Peek: true}
	msgs, err := cl.Fetch(imap.UIDSetNum(uids[0]), &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{body},
	}).Collect()
	if err != nil {
		return nil, fmt.Errorf("UID FETCH of the %s sample: %w", sm.Name, err)
	}
	m, err := oneMessage(msgs)
	if err != nil {
		return nil, fmt.Errorf("UID FETCH of the %s sample: %w", sm.Name, err)
	}
	raw := m.FindBodySection(body)
	sum := sha256.Sum256(raw)
	flags := oldserver.MessageFlags(m.Flags)
	sort.Strings(flags)
	return &SampleCopy{
		Name: sm.Name, UID: uint32(m.UID), Flags: flags, InternalDate: m.InternalDate,
		Size: m.RFC822Size, SHA256: hex.EncodeToString(sum[:]), Raw: raw,
	}, nil
}

// oneMessage merges the FETCH responses of one UID into one message: a
// server may split a message's items over several responses (FLAGS and
// INTERNALDATE after the body's), which the client hands over as they
// came. Responses about more than one UID are an error.
func oneMessage(msgs []*imapclient.FetchMessageBuffer) (*imapclient.FetchMessageBuffer, error) {
	if len(msgs) == 0 {
		return nil, errors.New("the old server returned no message")
	}
	m := *msgs[0]
	for _, o := range msgs[1:] {
		if o.UID != m.UID {
			return nil, fmt.Errorf("the old server returned %d messages for one UID", len(msgs))
		}
		if o.Flags != nil {
			m.Flags = o.Flags
		}
		if !o.InternalDate.IsZero() {
			m.InternalDate = o.InternalDate
		}
		if o.RFC822Size != 0 {
			m.RFC822Size = o.RFC822Size
		}
		m.BodySection = append(m.BodySection, o.BodySection...)
	}
	return &m, nil
}
