package store

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"
)

// Direct writes of the pack this Store appends to. Where the file system
// takes them (Linux, O_DIRECT), a pack's bytes are gathered in an aligned
// buffer and written past the page cache in blocks of directAlign bytes:
// the kernel neither allocates, copies nor later writes back a page of
// cache per 4 KiB, and a gigabyte copied takes about 250 writes instead of
// one per message (a copy's CPU went to that page-cache work for a tenth).
//
// Invariants (beside pack.go's):
//   - The buffer holds the bytes of pack wid from flushed to end, in order,
//     at buf[flushed%directAlign:]: a byte's place in the buffer and in the
//     file are the same modulo directAlign, so a block aligned in the file
//     is aligned in memory.
//   - Only whole aligned blocks go through the direct handle. The bytes
//     before the first block boundary and after the last one (a sync, a
//     pack left) go through the ordinary handle, so this Store writes no
//     byte twice (but for a direct write refused for space, below) and
//     nothing pads the pack. (A page shared by the last
//     synced bytes and the next ones is written back whole by the kernel,
//     as with every buffered append before direct writes.)
//   - Bytes still in the buffer are not in the file: nobody reads them,
//     because only a sync (which flushes first) lets a transaction name
//     them. sync flushes, waits for the queued writes of its bytes, then
//     fsyncs, and counts as durable only what it flushed before.
//   - A full buffer's whole blocks are written by a goroutine of their
//     own (queueLocked) while appends go on into another buffer, so that
//     an append does not wait for the disk (on one CPU the wait held the
//     process's only P while the network reader could have run). Up to
//     directQueue such writes are queued (fls, oldest first), each
//     beginning once the one before it ended: the pack is still written
//     in order, one write at a time, and the queue absorbs the disk's
//     uneven pace where one write in flight made the appends wait for
//     every slow one (README, "mailferry migrate, the whole process").
//     flushed already counts the queued bytes. A queued write after
//     a failed one writes nothing and ends with its error.
//   - The outcomes of queued writes are taken in, in order, by whoever
//     needs them (waitFlushLocked): an append needing a buffer when
//     directQueue writes are queued, a sync for the writes up to its
//     bytes, a pack left or closed (all of them). A failure is taken in as
//     a failed write (the pack abandoned): the appends that went on
//     meanwhile returned nil, and their bytes are refused by the sync that
//     would have made them durable (ErrNotDurable), as Stage documents.
//   - A sync queues the buffer's whole blocks and writes the bytes after
//     them at once, then lets go of wmu while it waits for the queued
//     writes up to its bytes (holding syncMu: the pack is neither left nor
//     closed meanwhile), takes their outcomes in, and only then fsyncs:
//     appends go on into a new buffer while a commit waits for the disk.
//     The bytes the sync writes through the ordinary handle start at a
//     block boundary at or past every queued write's end, so no page is
//     written both ways at once.
//   - A failed flush is a failed write (pack.go): the pack is abandoned
//     and every byte of it not synced before is refused. A direct write
//     refused for space is made again through the ordinary handle first,
//     so that a full disk is full to its last block, as the disk reserve
//     expects (reserve.go; TestDiskFull in core/migrate). A file system
//     that refuses direct writes (EINVAL: not supported, or another
//     alignment) is written through the ordinary handle from then on; a
//     refused direct write wrote nothing.
//   - Without a direct handle (other systems, file systems without
//     O_DIRECT, tests that wrap the pack: packs.wrap) append writes each
//     body at once, as before: buffer is nil.

// directAlign is the alignment of direct writes, in the file and in
// memory: the page size, which every Linux file system taking O_DIRECT
// accepts (most need 512 bytes only).
const directAlign = 4096

// directBufSize is how many bytes are gathered before a direct write.
const directBufSize = 1 << 20

// directQueue is how many full buffers' direct writes may be queued at
// once (packs.fls); memory holds one more buffer, the one appended to.
// Session 15 measured four on a quiet machine (pinned 964 MB `mailferry
// migrate`, five runs by turns): a wall of 2.93 against 2.97 s with three
// (one write in flight: 3.26 s), but a peak RSS of 61.4-65.9 MB, past
// issue 17's 64 MB (three: 58.0-63.1 MB), so it kept three. Since
// `mailferry migrate` bounds its SQLite writer's page cache
// (Options.WriterCacheKiB), which had grown with the database, four take
// 52.1-54.6 MB in the same copy (session 16, five runs at load 13-18;
// three before that bound 56.0-58.4 MB).
const directQueue = 4

// directFlush is a queued direct write (queueLocked).
type directFlush struct {
	done chan struct{} // closed once the write ended
	buf  []byte        // the buffer it writes from, given back after
	end  int64         // the end of its bytes in the pack
	// Set before done is closed:
	err     error
	refused bool // the direct write was refused (EINVAL): written through the ordinary handle
}

// alignedBuffer returns an empty slice of capacity n whose first byte is
// directAlign-aligned in memory.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := (directAlign - int(uintptr(unsafe.Pointer(&b[0]))%directAlign)) % directAlign
	return b[skip : skip : skip+n]
}

// startDirect opens pack name a second time for direct writes and gives
// p its buffer; p keeps writing through its ordinary handle alone if the
// file system has no direct writes. The caller holds wmu.
func (p *packs) startDirect(name string) {
	p.dw, p.flushed = nil, 0
	if p.wrap != nil {
		return
	}
	f := openDirect(name)
	if f == nil {
		return
	}
	var w packFile = f
	if p.wrapDirect != nil {
		w = p.wrapDirect(f)
	}
	p.dw = w
	if p.buf == nil {
		p.buf = alignedBuffer(directBufSize)
	}
	p.buf = p.buf[:0]
}

// stopDirect closes the direct handle of the pack being left, its buffer
// emptied (a pack is left after its bytes were flushed and synced, or
// after it failed). The caller holds wmu.
func (p *packs) stopDirect() {
	for _, fl := range p.fls {
		// Their outcomes no longer matter (the pack was synced through
		// them, or is abandoned), but their handle and buffers do.
		<-fl.done
		p.free = append(p.free, fl.buf[:0])
	}
	clear(p.fls)
	p.fls = p.fls[:0]
	if p.dw != nil {
		p.dw.Close()
		p.dw = nil
	}
	p.buf = p.buf[:0]
}

// bufferLocked adds body to the buffer, writing whole blocks whenever it
// is full. The caller holds wmu, and p.dw is set.
func (p *packs) bufferLocked(body []byte) error {
	if len(p.buf) == 0 {
		// The buffer starts at flushed's place in its block.
		p.buf = p.buf[:p.flushed%directAlign]
	}
	for len(body) > 0 {
		if len(p.buf) == cap(p.buf) {
			if err := p.flushAsyncLocked(); err != nil {
				return err
			}
			if p.dw == nil {
				// Direct writes were refused: the rest as every later
				// append, at once.
				return p.writePlainLocked(body)
			}
		}
		n := copy(p.buf[len(p.buf):cap(p.buf)], body)
		p.buf = p.buf[:len(p.buf)+n]
		body = body[n:]
	}
	return nil
}

// flushLocked writes every buffered byte to the pack and waits until
// every queued write ended (flushQueueLocked, then waitFlushLocked). A
// failed write abandons the pack (packs.broken). The caller holds wmu.
func (p *packs) flushLocked() error {
	if err := p.flushQueueLocked(); err != nil {
		return err
	}
	return p.waitFlushLocked(0)
}

// flushQueueLocked hands every buffered byte to the pack without waiting
// for the disk: the part before the first block boundary and the part
// after the last one through the ordinary handle at once, the whole
// blocks queued for a direct write (the buffer then belongs to it, and
// appends go on into another). flushed then covers every byte appended;
// the queued writes' outcomes are taken in by waitFlushLocked. A failed
// write abandons the pack. The caller holds wmu.
func (p *packs) flushQueueLocked() error {
	if err := p.waitFlushLocked(directQueue - 1); err != nil || p.dw == nil {
		return err // or direct writes were refused: waitFlushLocked wrote the buffer
	}
	data, err := p.flushHeadLocked()
	if err != nil {
		return err
	}
	// Whole blocks, aligned in the file and in memory.
	if blocks := len(data) &^ (directAlign - 1); blocks > 0 {
		p.queueLocked(data[:blocks])
		p.buf = p.bufferFreeLocked()
		data = data[blocks:]
	} else {
		p.buf = p.buf[:0]
	}
	// The tail starts at a block boundary past every queued byte: a page
	// of its own.
	return p.writePlainLocked(data)
}

// flushAsyncLocked queues the direct write of the full buffer's whole
// blocks (once fewer than directQueue are queued) and goes on with the
// bytes after them in another buffer; the bytes before the first block
// boundary (the buffer's first bytes after a sync) are written at once
// through the ordinary handle. The caller holds wmu.
func (p *packs) flushAsyncLocked() error {
	if err := p.waitFlushLocked(directQueue - 1); err != nil || p.dw == nil {
		return err // or direct writes were refused: waitFlushLocked wrote the buffer
	}
	data, err := p.flushHeadLocked()
	if err != nil {
		return err
	}
	blocks := len(data) &^ (directAlign - 1)
	if blocks == 0 {
		// (Not with a full buffer.) What is left starts at a block
		// boundary: at the buffer's start.
		p.buf = p.buf[:copy(p.buf[:cap(p.buf)], data)]
		return nil
	}
	// What is left starts at a block boundary: at the next buffer's start.
	next := p.bufferFreeLocked()
	next = next[:copy(next[:cap(next)], data[blocks:])]
	p.queueLocked(data[:blocks])
	p.buf = next
	return nil
}

// bufferFreeLocked returns an empty buffer no queued write uses. The
// caller holds wmu.
func (p *packs) bufferFreeLocked() []byte {
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		return b[:0]
	}
	return alignedBuffer(directBufSize)
}

// queueLocked queues the direct write of b, whole blocks at flushed in
// the buffer p.buf (which then belongs to the write until its outcome is
// taken in), after the writes queued before it. The caller holds wmu,
// fewer than directQueue writes are queued, and p.dw is set.
func (p *packs) queueLocked(b []byte) {
	fl := &directFlush{done: make(chan struct{}), buf: p.buf, end: p.flushed + int64(len(b))}
	var prev *directFlush
	if n := len(p.fls); n > 0 {
		prev = p.fls[n-1]
	}
	dw, w, off := p.dw, p.w, p.flushed
	p.fls = append(p.fls, fl)
	p.flushed = fl.end
	go func() {
		defer close(fl.done)
		if prev != nil {
			<-prev.done
			if prev.err != nil {
				fl.err = prev.err // the pack is abandoned: nothing more is written to it
				return
			}
		}
		fl.refused, fl.err = writeBlocks(dw, w, b, off)
	}()
}

// flushHeadLocked begins a flush: it writes the buffered bytes before the
// first block boundary through the ordinary handle and returns the rest
// (in the buffer's memory), which starts at one. The caller holds wmu
// and p.dw is set.
func (p *packs) flushHeadLocked() ([]byte, error) {
	head := int(p.flushed % directAlign)
	if len(p.buf) <= head {
		p.buf = p.buf[:0]
		return nil, nil
	}
	data := p.buf[head:]
	if head == 0 {
		return data, nil
	}
	n := min(directAlign-head, len(data))
	if err := p.writePlainLocked(data[:n]); err != nil {
		return nil, err
	}
	return data[n:], nil
}

// waitFlushLocked waits for the oldest queued writes until at most keep
// are left and takes in their outcomes, in order: a failure abandons the
// pack (as a failed write does); a refused direct write ends direct
// writes for the pack, once every queued write ended (the bytes gathered
// since go out through the ordinary handle now). The caller holds wmu.
func (p *packs) waitFlushLocked(keep int) error {
	refused := false
	for len(p.fls) > keep || (refused && len(p.fls) > 0) {
		fl := p.fls[0]
		<-fl.done
		p.fls[0] = nil
		p.fls = p.fls[1:]
		p.free = append(p.free, fl.buf[:0])
		if fl.err != nil {
			if p.broken != nil {
				// Taken in before (a queued write after the failed one).
				return fmt.Errorf("store: write pack %d: %w: %w", p.wid, ErrNotDurable, p.broken)
			}
			return p.failLocked(fl.err)
		}
		refused = refused || fl.refused
		p.room.restore()
	}
	if !refused || p.dw == nil {
		return nil
	}
	p.dw.Close()
	p.dw = nil
	// As every later append: at once.
	var data []byte
	if head := int(p.flushed % directAlign); len(p.buf) > head {
		data = p.buf[head:]
	}
	p.buf = p.buf[:0]
	return p.writePlainLocked(data)
}

// waitFlushedLocked waits for the queued writes of bytes before end and
// takes in their outcomes; it lets go of wmu while it waits. The caller
// holds wmu and syncMu (so the pack is neither left nor closed meanwhile).
func (p *packs) waitFlushedLocked(end int64) error {
	var last *directFlush
	for _, fl := range p.fls {
		if fl.end > end {
			break
		}
		last = fl
	}
	if last == nil {
		return nil
	}
	p.wmu.Unlock()
	<-last.done // and every write queued before it: they ended first
	p.wmu.Lock()
	// Others may have taken some in meanwhile (a failure: broken is set).
	n := 0
	for n < len(p.fls) && p.fls[n].end <= end {
		n++
	}
	return p.waitFlushLocked(len(p.fls) - n)
}

// writeBlocks writes whole aligned blocks b at off through the direct
// handle dw, or through the ordinary handle w where the direct write was
// refused: for EINVAL (no direct writes here after all: nothing was
// written; refused says so), or for space. A direct write refused for
// space can leave up to its size free; written the ordinary way, the same
// bytes fill the disk to its last block, as every pack write did before,
// so that the disk reserve (reserve.go), released for it, is not made
// again at once by the next write that fits: the database needs that room
// to record the full disk. (The pack is lost all the same.)
func writeBlocks(dw, w packFile, b []byte, off int64) (refused bool, err error) {
	_, err = dw.WriteAt(b, off)
	switch {
	case errors.Is(err, syscall.EINVAL):
		refused = true
		_, err = w.WriteAt(b, off)
	case IsDiskFull(err):
		_, err = w.WriteAt(b, off)
	}
	return refused, err
}

// failLocked abandons the pack after the failed write err (packs.broken):
// the buffered bytes are dropped. The caller holds wmu.
func (p *packs) failLocked(err error) error {
	p.buf = p.buf[:0]
	p.broken = fmt.Errorf("write: %w", err)
	if IsDiskFull(err) {
		p.room.release()
	}
	return fmt.Errorf("store: write pack %d: %w: %w", p.wid, ErrNotDurable, err)
}

// writePlainLocked writes b at flushed through the ordinary handle; a
// failed write abandons the pack. The caller holds wmu.
func (p *packs) writePlainLocked(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if _, err := p.w.WriteAt(b, p.flushed); err != nil {
		return p.failLocked(err)
	}
	p.flushed += int64(len(b))
	return nil
}
