package trial

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"mailferry/core/demo"
	"mailferry/core/oldserver"
)

// Check logs in to Mailferry's IMAP as address and checks every
// sample against what the old server served (old): present exactly once,
// same UID, the same bytes (size and SHA-256), flags and INTERNALDATE
// (instant and zone), and its Subject and body decoding to the text that
// was sent. It also compares every folder's message count with the old
// server (s). progress (if not nil) gets the number of samples checked.
func (t *Trial) Check(ctx context.Context, s oldserver.Settings, address, password string, samples []demo.Sample, old []SampleCopy, client ClientSettings, progress func(done, total int)) (*Report, error) {
	if len(old) != len(samples) {
		return nil, fmt.Errorf("%d samples but %d old copies", len(samples), len(old))
	}
	r := &Report{Address: address, Time: time.Now(), Client: client}
	cl, done, err := t.front().dial(ctx, address, password)
	if err != nil {
		return nil, err
	}
	defer done()
	sel, err := cl.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, ctxErr(ctx, fmt.Errorf("Mailferry IMAP: EXAMINE INBOX: %w", err))
	}
	add := func(sample, name string, ok bool, format string, args ...any) {
		r.Checks = append(r.Checks, Check{Sample: sample, Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	}
	for i, sm := range samples {
		o := old[i]
		cp, err := fetchSample(cl, sm)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			add(sm.Name, "present", false, "%v", err)
			r.Samples = append(r.Samples, SampleView{Name: sm.Name})
			continue
		}
		if cp == nil {
			add(sm.Name, "present", false, "not found in INBOX on Mailferry (Message-ID <%s>)", sm.MessageID)
			r.Samples = append(r.Samples, SampleView{Name: sm.Name})
			continue
		}
		add(sm.Name, "present", true, "found once in INBOX, UID %d", cp.UID)
		add(sm.Name, "same UID", cp.UID == o.UID && sel.UIDValidity == o.UIDValidity,
			"old UID %d (UIDVALIDITY %d), Mailferry UID %d (UIDVALIDITY %d)", o.UID, o.UIDValidity, cp.UID, sel.UIDValidity)
		add(sm.Name, "identical bytes", cp.Size == o.Size && cp.SHA256 == o.SHA256 && int64(len(cp.Raw)) == o.Size,
			"old %d bytes sha256 %s…, Mailferry %d bytes sha256 %s…", o.Size, short(o.SHA256), cp.Size, short(cp.SHA256))
		add(sm.Name, "same flags", strings.Join(cp.Flags, " ") == strings.Join(o.Flags, " "),
			"old [%s], Mailferry [%s]", strings.Join(o.Flags, " "), strings.Join(cp.Flags, " "))
		_, oz := o.InternalDate.Zone()
		_, nz := cp.InternalDate.Zone()
		add(sm.Name, "same date", o.InternalDate.Equal(cp.InternalDate) && oz == nz,
			"old %s, Mailferry %s", o.InternalDate.Format(time.RFC1123Z), cp.InternalDate.Format(time.RFC1123Z))
		v, perr := ParseMessage(cp.Raw)
		if perr != nil {
			add(sm.Name, "decodes", false, "%v", perr)
		} else {
			add(sm.Name, "subject decodes", v.Subject == sm.Subject, "%q", v.Subject)
			want := strings.ReplaceAll(sm.Text, "\r\n", "\n")
			add(sm.Name, "text decodes", v.Text == want, "%d characters%s", len([]rune(v.Text)), diffNote(v.Text, want))
			if sm.HTML != "" {
				wantH := strings.ReplaceAll(sm.HTML, "\r\n", "\n")
				add(sm.Name, "HTML decodes", v.HTML == wantH, "%d characters%s", len([]rune(v.HTML)), diffNote(v.HTML, wantH))
			}
		}
		r.Samples = append(r.Samples, SampleView{Name: sm.Name, Found: true, Subject: v.Subject, Raw: cp.Raw})
		if progress != nil {
			progress(i+1, len(samples))
		}
	}
	// Account-wide: every folder has as many messages as on the old server.
	of, err := oldFolders(ctx, s, address, password)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		add("", "folders", false, "could not read the old server's folders: %v", err)
	} else {
		have, err := frontFolders(cl)
		if err != nil {
			return nil, ctxErr(ctx, err)
		}
		var bad []string
		var total int64
		for _, f := range of {
			total += f.Messages
			if n, ok := have[f.Name]; !ok {
				bad = append(bad, f.Name+" missing")
			} else if n != f.Messages {
				bad = append(bad, fmt.Sprintf("%s has %d of %d", f.Name, n, f.Messages))
			}
		}
		if len(bad) == 0 {
			add("", "all folders", true, "%d folders, %d messages, as on the old server", len(of), total)
		} else {
			add("", "all folders", false, "%s", strings.Join(bad, "; "))
		}
	}
	_ = cl.Logout().Wait()
	return r, nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func diffNote(got, want string) string {
	if got == want {
		return ", as sent"
	}
	g, w := []rune(got), []rune(want)
	i := 0
	for i < len(g) && i < len(w) && g[i] == w[i] {
		i++
	}
	return fmt.Sprintf(", differs from what was sent at character %d", i)
}
