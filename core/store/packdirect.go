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
//     them. sync flushes, then fsyncs, and counts as durable only what it
//     flushed.
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
			if err := p.flushLocked(false); err != nil {
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

// flushLocked writes the buffered bytes to the pack: the part before the
// first block boundary through the ordinary handle, the whole blocks
// directly, and (all) the rest through the ordinary handle, or else (not
// all) keeps the rest at the buffer's start. A failed write abandons the
// pack (packs.broken). The caller holds wmu.
func (p *packs) flushLocked(all bool) error {
	head := int(p.flushed % directAlign)
	if p.dw == nil || len(p.buf) <= head {
		return nil
	}
	data := p.buf[head:]
	write := func(w packFile, b []byte) error {
		if len(b) == 0 {
			return nil
		}
		if _, err := w.WriteAt(b, p.flushed); err != nil {
			return err
		}
		p.flushed += int64(len(b))
		return nil
	}
	// Up to the first block boundary.
	var err error
	if head > 0 {
		n := min(directAlign-head, len(data))
		err = write(p.w, data[:n])
		data = data[n:]
	}
	// Whole blocks, aligned in the file and in memory.
	if blocks := len(data) &^ (directAlign - 1); err == nil && blocks > 0 {
		err = write(p.dw, data[:blocks])
		switch {
		case errors.Is(err, syscall.EINVAL):
			// No direct writes here after all: nothing was written.
			p.dw.Close()
			p.dw = nil
			err = write(p.w, data[:blocks])
		case IsDiskFull(err):
			// A direct write refused for space can leave up to its
			// size free. Written the ordinary way, the same bytes
			// fill the disk to its last block, as every pack write
			// did before, so that the disk reserve (reserve.go),
			// released for it, is not made again at once by the
			// next write that fits: the database needs that room to
			// record the full disk. (The pack is lost all the same.)
			err = write(p.w, data[:blocks])
		}
		data = data[blocks:]
	}
	if err == nil && all {
		err = write(p.w, data)
		data = nil
	}
	if err != nil {
		p.buf = p.buf[:0]
		p.broken = fmt.Errorf("write: %w", err)
		if IsDiskFull(err) {
			p.room.release()
		}
		return fmt.Errorf("store: write pack %d: %w: %w", p.wid, ErrNotDurable, err)
	}
	p.room.restore()
	// What is left starts at a block boundary: at the buffer's start.
	if p.dw == nil {
		// Direct writes were refused: the rest goes out now, as every
		// later append does.
		p.buf = p.buf[:0]
		return p.writePlainLocked(data)
	}
	p.buf = p.buf[:copy(p.buf[:cap(p.buf)], data)]
	return nil
}

// writePlainLocked writes b at flushed through the ordinary handle; a
// failed write abandons the pack. The caller holds wmu.
func (p *packs) writePlainLocked(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if _, err := p.w.WriteAt(b, p.flushed); err != nil {
		p.buf = p.buf[:0]
		p.broken = fmt.Errorf("write: %w", err)
		if IsDiskFull(err) {
			p.room.release()
		}
		return fmt.Errorf("store: write pack %d: %w: %w", p.wid, ErrNotDurable, err)
	}
	p.flushed += int64(len(b))
	return nil
}
