package store

import (
	"time"
)

// Staging: a message's bytes written and hashed before the transaction
// that names them (pack.go has the packs' invariants).

// StagedBlob is a message's bytes written to the store ahead of the
// transaction that appends the message (see Stage). It belongs to the
// Store that staged it: append it through that Store's transactions.
type StagedBlob struct {
	Key       string // the blob key (blobkey.go)
	Size      int64
	pack, off int64     // pack is objectPack for an object
	putAt     time.Time // when the object's PUT began (objects only)
	envelope  []byte
	structure []byte
}

// Stage writes a message's bytes (and, with Options.Summarize, its
// summary) to the store outside any transaction, so that a writer can do
// the heavy part of an append while another transaction commits. Append
// the message with NewMessage.Staged; staged bytes no message names are
// dead space that Compact gives back.
//
// A failed write or fsync of a pack abandons it: later bytes go to a new
// pack, and every blob staged into it that no fsync had made durable
// before the failure is lost. SyncStaged, and the commit of any
// transaction naming such a blob, then fail with ErrNotDurable; stage the
// bytes again (they go to a new pack) and append them in a new
// transaction.
//
// With object storage (Options.Objects) the bytes are one object, durable
// once Stage returned; an object store that fails or does not answer
// within its timeout fails Stage with ErrNotDurable.
func (s *Store) Stage(body []byte) (*StagedBlob, error) {
	return s.stageKeyed(body, s.blobKey(body))
}

// stageKeyed is Stage under key, which the caller made or checked
// (checkKey): body is not hashed again.
func (s *Store) stageKeyed(body []byte, key string) (*StagedBlob, error) {
	b := &StagedBlob{Key: key, Size: int64(len(body))}
	var err error
	if s.objects != nil {
		err = s.stageObject(b, body)
	} else {
		b.pack, b.off, err = s.packs.append(body)
	}
	if err != nil {
		return nil, err
	}
	if s.summarize != nil {
		b.envelope, b.structure = s.summarize(body)
	}
	return b, nil
}

// SyncStaged makes the bytes of bs (and all staged before them) durable.
// Commit does this too; doing it first keeps the fsync out of the
// transaction, so that other writers do not wait for the disk. It fails
// with ErrNotDurable when some of the bytes may be lost (see Stage).
func (s *Store) SyncStaged(bs ...*StagedBlob) error {
	var spans []packSpan
	for _, b := range bs {
		if b != nil && b.pack != objectPack {
			spans = addSpan(spans, b.pack, b.off+b.Size)
		}
	}
	return s.packs.syncAll(spans)
}
