package imapserver

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SessionID is an IMAP session which supports ID (RFC 2971). The server
// advertises ID, in every state, when its capabilities include imap.CapID.
type SessionID interface {
	Session

	// ID receives what the client said about itself (nil for "ID NIL")
	// and returns what the server says about itself (nil for "* ID NIL").
	// It is valid in any state, also before login.
	ID(client *imap.IDData) *imap.IDData
}

// RFC 2971 section 3.3: at most 30 pairs, keys of at most 30 octets, values
// of at most 1024 octets.
const (
	maxIDPairs    = 30
	maxIDKeyLen   = 30
	maxIDValueLen = 1024
)

func (c *Conn) handleID(dec *imapwire.Decoder) error {
	if !dec.ExpectSP() {
		return dec.Err()
	}
	var client *imap.IDData
	var nilAtom string
	if dec.Atom(&nilAtom) {
		if !dec.Expect(strings.EqualFold(nilAtom, "NIL"), "NIL") {
			return dec.Err()
		}
	} else {
		client = &imap.IDData{}
		pairs := 0
		err := dec.ExpectList(func() error {
			var key, value string
			if !dec.ExpectString(&key) || !dec.ExpectSP() || !dec.ExpectNString(&value) {
				return dec.Err()
			}
			pairs++
			if pairs > maxIDPairs || len(key) > maxIDKeyLen || len(value) > maxIDValueLen {
				return newClientBugError("ID: too many or too long fields (RFC 2971 3.3)")
			}
			setIDField(client, key, value)
			return nil
		})
		if err != nil {
			return err
		}
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}

	sess, ok := c.session.(SessionID)
	if !ok || !c.server.options.caps().Has(imap.CapID) {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Unknown command"}
	}
	server := sess.ID(client)

	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("ID").SP()
	fields := idFields(server)
	if len(fields) == 0 {
		enc.NIL()
	} else {
		enc.List(len(fields)/2, func(i int) {
			enc.String(fields[2*i]).SP()
			writeNString(enc.Encoder, fields[2*i+1])
		})
	}
	return enc.CRLF()
}

func setIDField(data *imap.IDData, key, value string) {
	switch strings.ToLower(key) {
	case "name":
		data.Name = value
	case "version":
		data.Version = value
	case "os":
		data.OS = value
	case "os-version":
		data.OSVersion = value
	case "vendor":
		data.Vendor = value
	case "support-url":
		data.SupportURL = value
	case "address":
		data.Address = value
	case "date":
		data.Date = value
	case "command":
		data.Command = value
	case "arguments":
		data.Arguments = value
	case "environment":
		data.Environment = value
	}
}

// idFields lists the non-empty fields as key, value pairs.
func idFields(data *imap.IDData) []string {
	if data == nil {
		return nil
	}
	var out []string
	for _, kv := range [][2]string{
		{"name", data.Name}, {"version", data.Version}, {"os", data.OS},
		{"os-version", data.OSVersion}, {"vendor", data.Vendor},
		{"support-url", data.SupportURL}, {"address", data.Address},
		{"date", data.Date}, {"command", data.Command},
		{"arguments", data.Arguments}, {"environment", data.Environment},
	} {
		if kv[1] != "" {
			out = append(out, kv[0], kv[1])
		}
	}
	return out
}
