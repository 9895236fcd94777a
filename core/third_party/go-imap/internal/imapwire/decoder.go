package imapwire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapnum"
	"github.com/emersion/go-imap/v2/internal/utf7"
)

// This limits the max list nesting depth to prevent stack overflow.
const maxListDepth = 1000

// IsAtomChar returns true if ch is an ATOM-CHAR.
func IsAtomChar(ch byte) bool {
	switch ch {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	default:
		return !unicode.IsControl(rune(ch))
	}
}

// Is non-empty char
func isAStringChar(ch byte) bool {
	return IsAtomChar(ch) || ch == ']'
}

// DecoderExpectError is an error due to the Decoder.Expect family of methods.
type DecoderExpectError struct {
	Message string
}

func (err *DecoderExpectError) Error() string {
	return fmt.Sprintf("imapwire: %v", err.Message)
}

// A Decoder reads IMAP data.
//
// There are multiple families of methods:
//
//   - Methods directly named after IMAP grammar elements attempt to decode
//     said element, and return false if it's another element.
//   - "Expect" methods do the same, but set the decoder error (see Err) on
//     failure.
type Decoder struct {
	// CheckBufferedLiteralFunc is called when a literal is about to be decoded
	// and needs to be fully buffered in memory.
	CheckBufferedLiteralFunc func(size int64, nonSync bool) error
	// MaxSize defines a maximum number of bytes to be read from the input.
	// Literals are ignored.
	MaxSize int64

	r         *bufio.Reader
	side      ConnSide
	err       error
	literal   bool
	crlf      bool
	listDepth int
	readBytes int64
	// fork: a read refused past MaxSize (change 44), a literal refused
	// for it (change 48)
	exceeded, literalExceeded bool
	// end follows the line read so far: whether it ends announcing a
	// literal (FORK.md change 60; for a line cut at MaxSize, change 51),
	// endPrev what it was before the last byte read (mustUnreadByte)
	end, endPrev LineEnd
}

// NewDecoder creates a new decoder.
func NewDecoder(r *bufio.Reader, side ConnSide) *Decoder {
	return &Decoder{r: r, side: side}
}

func (dec *Decoder) mustUnreadByte() {
	if err := dec.r.UnreadByte(); err != nil {
		panic(fmt.Errorf("imapwire: failed to unread byte: %v", err))
	}
	dec.readBytes--
	if dec.MaxSize > 0 {
		dec.end = dec.endPrev
	}
}

// LineEnd returns the state of the line the decoder read so far (the
// bytes of a literal read whole aside), which the reader of the rest of a
// line cut at MaxSize goes on with: whether the line ends announcing a
// literal (FORK.md changes 51 and 60). It is followed only with a MaxSize
// (a server's commands), as DiscardCommand needs it.
func (dec *Decoder) LineEnd() LineEnd {
	return dec.end
}

// Err returns the decoder error, if any.
func (dec *Decoder) Err() error {
	return dec.err
}

func (dec *Decoder) returnErr(err error) bool {
	if err == nil {
		return true
	}
	if dec.err == nil {
		dec.err = err
	}
	return false
}

// ErrMaxSize is the decoder's error when what it read passed MaxSize
// (fork: FORK.md changes 44 and 48).
var ErrMaxSize = errors.New("imapwire: max size exceeded")

// Exceeded reports whether the decoder refused to read past MaxSize: the
// rest of the line was not read (fork change 44), whatever error the
// decoder met first.
func (dec *Decoder) Exceeded() bool {
	return dec.exceeded
}

// LiteralExceeded reports whether a literal was refused because the
// command with it would pass MaxSize (fork change 48): its bytes were not
// read, and no continuation request was sent for it.
func (dec *Decoder) LiteralExceeded() bool {
	return dec.literalExceeded
}

func (dec *Decoder) readByte() (byte, bool) {
	if dec.MaxSize > 0 && dec.readBytes > dec.MaxSize {
		dec.exceeded = true
		return 0, dec.returnErr(ErrMaxSize)
	}
	dec.crlf = false
	if dec.literal {
		return 0, dec.returnErr(fmt.Errorf("imapwire: cannot decode while a literal is open"))
	}
	b, err := dec.r.ReadByte()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return b, dec.returnErr(err)
	}
	dec.readBytes++
	if dec.MaxSize > 0 { // a server's command (a client's decoder, which
		// reads responses byte by byte, needs it not)
		dec.endPrev = dec.end
		dec.end.WriteByte(b)
	}
	return b, true
}

func (dec *Decoder) acceptByte(want byte) bool {
	got, ok := dec.readByte()
	if !ok {
		return false
	} else if got != want {
		dec.mustUnreadByte()
		return false
	}
	return true
}

// EOF returns true if end-of-file is reached. It peeks: the byte that
// follows is not read (fork change 74: read with ReadByte and given back
// with mustUnreadByte, which takes back a byte of readBytes that
// ReadByte had not counted, it let the command that followed be one byte
// longer than MaxSize allows).
func (dec *Decoder) EOF() bool {
	_, err := dec.r.Peek(1)
	if err == io.EOF {
		return true
	} else if err != nil {
		return dec.returnErr(err)
	}
	return false
}

// Expect sets the decoder error if ok is false.
func (dec *Decoder) Expect(ok bool, name string) bool {
	if !ok {
		msg := fmt.Sprintf("expected %v", name)
		if dec.r.Buffered() > 0 {
			b, _ := dec.r.Peek(1)
			msg += fmt.Sprintf(", got %q", b)
		}
		return dec.returnErr(&DecoderExpectError{Message: msg})
	}
	return true
}

func (dec *Decoder) SP() bool {
	if dec.acceptByte(' ') {
		// https://github.com/emersion/go-imap/issues/571
		b, ok := dec.readByte()
		if !ok {
			return false
		}
		dec.mustUnreadByte()
		return b != '\r' && b != '\n'
	}

	// Special case: SP is optional if the next field is a parenthesized list
	b, ok := dec.readByte()
	if !ok {
		return false
	}
	dec.mustUnreadByte()
	return b == '('
}

// PeekSPSpecial reports whether the next bytes are SP and b, consuming
// nothing (fork: PREVIEW's optional modifier list, RFC 8970).
func (dec *Decoder) PeekSPSpecial(b byte) bool {
	if dec.err != nil || dec.literal {
		return false
	}
	buf, err := dec.r.Peek(2)
	return err == nil && buf[0] == ' ' && buf[1] == b
}

func (dec *Decoder) ExpectSP() bool {
	return dec.Expect(dec.SP(), "SP")
}

func (dec *Decoder) CRLF() bool {
	dec.acceptByte(' ')  // https://github.com/emersion/go-imap/issues/540
	dec.acceptByte('\r') // be liberal in what we receive and accept lone LF
	if !dec.acceptByte('\n') {
		return false
	}
	dec.crlf = true
	return true
}

func (dec *Decoder) ExpectCRLF() bool {
	return dec.Expect(dec.CRLF(), "CRLF")
}

func (dec *Decoder) Func(ptr *string, valid func(ch byte) bool) bool {
	var sb strings.Builder
	for {
		b, ok := dec.readByte()
		if !ok {
			return false
		}

		if !valid(b) {
			dec.mustUnreadByte()
			break
		}

		sb.WriteByte(b)
	}
	if sb.Len() == 0 {
		return false
	}
	*ptr = sb.String()
	return true
}

func (dec *Decoder) Atom(ptr *string) bool {
	return dec.Func(ptr, IsAtomChar)
}

func (dec *Decoder) ExpectAtom(ptr *string) bool {
	return dec.Expect(dec.Atom(ptr), "atom")
}

func (dec *Decoder) ExpectNIL() bool {
	var s string
	return dec.ExpectAtom(&s) && dec.Expect(s == "NIL", "NIL")
}

func (dec *Decoder) Special(b byte) bool {
	return dec.acceptByte(b)
}

func (dec *Decoder) ExpectSpecial(b byte) bool {
	return dec.Expect(dec.Special(b), fmt.Sprintf("'%v'", string(b)))
}

func (dec *Decoder) Text(ptr *string) bool {
	var sb strings.Builder
	for {
		b, ok := dec.readByte()
		if !ok {
			return false
		} else if b == '\r' || b == '\n' {
			dec.mustUnreadByte()
			break
		}
		sb.WriteByte(b)
	}
	if sb.Len() == 0 {
		return false
	}
	*ptr = sb.String()
	return true
}

func (dec *Decoder) ExpectText(ptr *string) bool {
	return dec.Expect(dec.Text(ptr), "text")
}

func (dec *Decoder) DiscardUntilByte(untilCh byte) {
	for {
		ch, ok := dec.readByte()
		if !ok {
			return
		} else if ch == untilCh {
			dec.mustUnreadByte()
			return
		}
	}
}

func (dec *Decoder) DiscardLine() {
	if dec.crlf {
		return
	}
	var text string
	dec.Text(&text)
	dec.CRLF()
}

// DiscardCommand reads and drops the rest of a command: the rest of its
// line and, while a line ends announcing a non-synchronizing literal
// ("{n+}", RFC 7888), the literal and the line after it (Mailferry fork,
// review of FORK.md change 48): a command refused before its LITERAL+
// literals (SEARCH CHARSET X TEXT {n+}, NO [BADCHARSET]) had their bytes,
// sent at once, read as commands. A synchronizing literal's client waits
// for a continuation and gets none: the line is the command's end. Bounded
// by MaxSize, literals included: past it Exceeded, or LiteralExceeded when
// a literal would pass it (nothing of it read). It needs a MaxSize (the
// line is followed only then: LineEnd).
func (dec *Decoder) DiscardCommand() {
	if dec.crlf {
		return
	}
	for {
		b, ok := dec.readByte()
		if !ok {
			return
		}
		if b != '\r' && b != '\n' {
			continue // dec.end follows the line
		}
		dec.mustUnreadByte()
		end := dec.end // the line up to its CR or LF
		if !dec.CRLF() {
			return
		}
		n, nonSync, ok := end.Literal()
		if !ok || !nonSync {
			return
		}
		if dec.MaxSize > 0 && n > dec.MaxSize-dec.readBytes { // no overflow: readBytes <= MaxSize+1
			dec.readBytes = dec.MaxSize + 1
			dec.literalExceeded = true
			dec.returnErr(ErrMaxSize)
			return
		}
		if _, err := io.CopyN(io.Discard, dec.r, n); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			dec.returnErr(err)
			return
		}
		dec.readBytes += n
		dec.crlf = false
	}
}

// ErrDiscardLimit is the decoder's error when DiscardResponse met more
// bytes than it was allowed to drop (Mailferry fork, FORK.md change 29).
var ErrDiscardLimit = errors.New("imapwire: too many bytes to discard")

// DiscardResponse reads and drops the rest of a response's line, and the
// literals (and literal8s) it announces with the lines after them, up to the
// response's final CRLF, which is left for the caller. A client reads past an
// untagged response it does not know this way (Mailferry fork, FORK.md
// change 21). It drops at most limit bytes, and otherwise fails with
// ErrDiscardLimit (change 29): a line that never ends, or a literal of a
// terabyte, is not read for ever.
func (dec *Decoder) DiscardResponse(limit int64) bool {
	var end LineEnd // the current line, for a literal's "{n}"
	for {
		if limit < 0 {
			return dec.returnErr(ErrDiscardLimit)
		}
		b, err := dec.r.Peek(1)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return dec.returnErr(err)
		}
		if b[0] == '\r' || b[0] == '\n' {
			n, _, ok := end.Literal()
			if !ok {
				return true
			}
			if !dec.CRLF() {
				return dec.Expect(false, "CRLF")
			}
			if n > limit-2 { // the CRLF and the literal (no overflow: 0 <= limit, n)
				return dec.returnErr(ErrDiscardLimit)
			}
			limit -= 2 + n
			if _, err := io.CopyN(io.Discard, dec.r, n); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return dec.returnErr(err)
			}
			end = LineEnd{}
			continue
		}
		// The bytes up to the next CR or LF already buffered go at once
		// (byte by byte, a 64 MiB flood took minutes under the race
		// detector), at most what the bounds leave.
		buf, _ := dec.r.Peek(dec.r.Buffered()) // at least the byte above
		run := len(buf)
		if i := bytes.IndexAny(buf, "\r\n"); i >= 0 {
			run = i
		}
		if int64(run) > limit+1 {
			run = int(limit + 1)
		}
		if left := dec.MaxSize - dec.readBytes + 1; dec.MaxSize > 0 && int64(run) > left {
			run = 1 // readByte fails if nothing is left
			if left > 1 {
				run = int(left)
			}
		}
		if _, ok := dec.readByte(); !ok { // the bounds' and state's checks
			return false
		}
		end.Write(buf[:run]) // still buffered: ReadByte did not fill
		if _, err := dec.r.Discard(run - 1); err != nil {
			return dec.returnErr(err)
		}
		dec.readBytes += int64(run - 1)
		limit -= int64(run)
	}
}

func (dec *Decoder) DiscardValue() bool {
	var s string
	if dec.String(&s) {
		return true
	}

	isList, err := dec.List(func() error {
		if !dec.DiscardValue() {
			return dec.Err()
		}
		return nil
	})
	if err != nil {
		return false
	} else if isList {
		return true
	}

	if dec.Atom(&s) {
		return true
	}

	dec.Expect(false, "value")
	return false
}

func (dec *Decoder) numberStr() (s string, ok bool) {
	var sb strings.Builder
	for {
		ch, ok := dec.readByte()
		if !ok {
			return "", false
		} else if ch < '0' || ch > '9' {
			dec.mustUnreadByte()
			break
		}
		sb.WriteByte(ch)
	}
	if sb.Len() == 0 {
		return "", false
	}
	return sb.String(), true
}

func (dec *Decoder) Number(ptr *uint32) bool {
	s, ok := dec.numberStr()
	if !ok {
		return false
	}
	v64, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return false // can happen on overflow
	}
	*ptr = uint32(v64)
	return true
}

func (dec *Decoder) ExpectNumber(ptr *uint32) bool {
	return dec.Expect(dec.Number(ptr), "number")
}

func (dec *Decoder) ExpectBodyFldOctets(ptr *uint32) bool {
	// Workaround: some servers incorrectly return "-1" for the body structure
	// size. See:
	// https://github.com/emersion/go-imap/issues/534
	if dec.acceptByte('-') {
		*ptr = 0
		return dec.Expect(dec.acceptByte('1'), "-1 (body-fld-octets workaround)")
	}
	return dec.ExpectNumber(ptr)
}

func (dec *Decoder) Number64(ptr *int64) bool {
	s, ok := dec.numberStr()
	if !ok {
		return false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return false // can happen on overflow
	}
	*ptr = v
	return true
}

func (dec *Decoder) ExpectNumber64(ptr *int64) bool {
	return dec.Expect(dec.Number64(ptr), "number64")
}

func (dec *Decoder) ModSeq(ptr *uint64) bool {
	s, ok := dec.numberStr()
	if !ok {
		return false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return false // can happen on overflow
	}
	*ptr = v
	return true
}

func (dec *Decoder) ExpectModSeq(ptr *uint64) bool {
	return dec.Expect(dec.ModSeq(ptr), "mod-sequence-value")
}

func (dec *Decoder) Quoted(ptr *string) bool {
	if !dec.Special('"') {
		return false
	}
	var sb strings.Builder
	for {
		ch, ok := dec.readByte()
		if !ok {
			return false
		}

		if ch == '"' {
			break
		}

		if ch == '\\' {
			ch, ok = dec.readByte()
			if !ok {
				return false
			}
		}

		sb.WriteByte(ch)
	}
	*ptr = sb.String()
	return true
}

func (dec *Decoder) ExpectAString(ptr *string) bool {
	if dec.Quoted(ptr) {
		return true
	}
	if dec.Literal(ptr) {
		return true
	}
	// We cannot do dec.Atom(ptr) here because sometimes mailbox names are unquoted,
	// and they can contain special characters like `]`.
	return dec.Expect(dec.Func(ptr, isAStringChar), "ASTRING-CHAR")
}

func (dec *Decoder) String(ptr *string) bool {
	return dec.Quoted(ptr) || dec.Literal(ptr)
}

func (dec *Decoder) ExpectString(ptr *string) bool {
	return dec.Expect(dec.String(ptr), "string")
}

func (dec *Decoder) ExpectNString(ptr *string) bool {
	var s string
	if !dec.literal8Next() && dec.Atom(&s) {
		if !dec.Expect(s == "NIL", "nstring") {
			return false
		}
		*ptr = ""
		return true
	}
	return dec.ExpectString(ptr)
}

func (dec *Decoder) ExpectNStringReader() (lit *LiteralReader, nonSync, ok bool) {
	var s string
	if !dec.literal8Next() && dec.Atom(&s) {
		if !dec.Expect(s == "NIL", "nstring") {
			return nil, false, false
		}
		return nil, true, true
	}
	// TODO: read quoted string as a string instead of buffering
	if dec.Quoted(&s) {
		return newLiteralReaderFromString(s), true, true
	}
	if lit, nonSync, ok = dec.LiteralReader(); ok {
		return lit, nonSync, true
	} else {
		return nil, false, dec.Expect(false, "nstring")
	}
}

func (dec *Decoder) List(f func() error) (isList bool, err error) {
	if !dec.Special('(') {
		return false, nil
	}
	if dec.Special(')') {
		return true, nil
	}

	dec.listDepth++
	defer func() {
		dec.listDepth--
	}()

	if dec.listDepth >= maxListDepth {
		return false, fmt.Errorf("imapwire: exceeded max depth")
	}

	for {
		if err := f(); err != nil {
			return true, err
		}

		if dec.Special(')') {
			return true, nil
		} else if !dec.ExpectSP() {
			return true, dec.Err()
		}
	}
}

func (dec *Decoder) ExpectList(f func() error) error {
	isList, err := dec.List(f)
	if err != nil {
		return err
	} else if !dec.Expect(isList, "(") {
		return dec.Err()
	}
	return nil
}

func (dec *Decoder) ExpectNList(f func() error) error {
	var s string
	if dec.Atom(&s) {
		if !dec.Expect(s == "NIL", "NIL") {
			return dec.Err()
		}
		return nil
	}
	return dec.ExpectList(f)
}

// errNULName: a mailbox name whose modified UTF-7 decodes to a name that
// begins with imap.RawMailboxMark.
var errNULName = errors.New("mailbox name decodes to a NUL first")

func (dec *Decoder) ExpectMailbox(ptr *string) bool {
	var name string
	if !dec.ExpectAString(&name) {
		return false
	}
	if strings.EqualFold(name, "INBOX") {
		*ptr = "INBOX"
		return true
	}
	decoded, err := utf7.Decode(name)
	if err == nil && dec.side == ConnSideClient && strings.HasPrefix(decoded, imap.RawMailboxMark) {
		// "&AAA-" decodes to the mark: kept as sent, marked, so that it is
		// never taken for another name's bytes (FORK.md change 28).
		err = errNULName
	}
	if err != nil && dec.side == ConnSideClient {
		// A server's name in broken modified UTF-7 (RFC 3501 §5.1.3) is
		// kept as it was sent, marked, rather than failing the whole
		// response (Mailferry fork, FORK.md changes 20 and 24).
		*ptr = imap.RawMailboxMark + name
		return true
	}
	if err != nil {
		// A name no mailbox can have (RFC 3501 5.1.3): answered NO, as
		// Dovecot does, not BAD; the command was well formed, and
		// imaptest's clients end the session at a BAD (Mailferry fork,
		// FORK.md change 45).
		return dec.returnErr(errInvalidMailboxName)
	}
	*ptr = decoded
	return true
}

// errInvalidMailboxName answers a command naming a mailbox in invalid
// modified UTF-7 (FORK.md change 45).
var errInvalidMailboxName = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Text: "Mailbox name is not valid modified UTF-7",
}

func (dec *Decoder) ExpectUID(ptr *imap.UID) bool {
	var num uint32
	if !dec.ExpectNumber(&num) {
		return false
	}
	*ptr = imap.UID(num)
	return true
}

func (dec *Decoder) ExpectNumSet(kind NumKind, ptr *imap.NumSet) bool {
	if dec.Special('$') {
		*ptr = imap.SearchRes()
		return true
	}

	var s string
	if !dec.Expect(dec.Func(&s, isNumSetChar), "sequence-set") {
		return false
	}
	numSet, err := imapnum.ParseSet(s)
	if err != nil {
		return dec.returnErr(err)
	}

	switch kind {
	case NumKindSeq:
		*ptr = seqSetFromNumSet(numSet)
	case NumKindUID:
		*ptr = uidSetFromNumSet(numSet)
	}
	return true
}

func (dec *Decoder) ExpectUIDSet(ptr *imap.UIDSet) bool {
	var numSet imap.NumSet
	ok := dec.ExpectNumSet(NumKindUID, &numSet)
	if ok {
		*ptr = numSet.(imap.UIDSet)
	}
	return ok
}

func isNumSetChar(ch byte) bool {
	return ch == '*' || IsAtomChar(ch)
}

func (dec *Decoder) Literal(ptr *string) bool {
	lit, nonSync, ok := dec.LiteralReader()
	if !ok {
		return false
	}
	// A literal read into memory counts towards MaxSize as the line's own
	// bytes do (Mailferry fork, FORK.md change 48): a SEARCH of 300
	// literals of 4 KiB each was held whole, as many as a client sent.
	if dec.MaxSize > 0 && lit.Size() > dec.MaxSize-dec.readBytes { // no overflow: readBytes <= MaxSize+1
		lit.cancel()
		dec.readBytes = dec.MaxSize + 1 // nothing more of the command is read
		dec.literalExceeded = true
		return dec.returnErr(ErrMaxSize)
	}
	if dec.CheckBufferedLiteralFunc != nil {
		if err := dec.CheckBufferedLiteralFunc(lit.Size(), nonSync); err != nil {
			lit.cancel()
			return false
		}
	}
	var sb strings.Builder
	_, err := io.Copy(&sb, lit)
	if err == nil {
		*ptr = sb.String()
		dec.readBytes += lit.Size()
	}
	return dec.returnErr(err)
}

// literal8Next reports whether a literal8 ("~{", RFC 3516 §4.2) comes next
// in a server's response, without consuming anything. '~' is an atom
// character, so callers that try an atom first (for NIL) ask this before.
func (dec *Decoder) literal8Next() bool {
	if dec.side != ConnSideClient || dec.literal {
		return false
	}
	b, err := dec.r.Peek(2)
	return err == nil && b[0] == '~' && b[1] == '{'
}

func (dec *Decoder) LiteralReader() (lit *LiteralReader, nonSync, ok bool) {
	// A server may send a literal8 wherever a literal may stand (Cyrus
	// does for BODY[] of a message holding NUL bytes): its bytes are read
	// as a literal's.
	if dec.literal8Next() {
		dec.acceptByte('~')
	}
	if !dec.Special('{') {
		return nil, false, false
	}
	var size int64
	if !dec.ExpectNumber64(&size) {
		return nil, false, false
	}
	if dec.side == ConnSideServer {
		nonSync = dec.acceptByte('+')
	}
	if !dec.ExpectSpecial('}') || !dec.ExpectCRLF() {
		return nil, false, false
	}
	dec.literal = true
	lit = &LiteralReader{
		dec:  dec,
		size: size,
		r:    io.LimitReader(dec.r, size),
	}
	return lit, nonSync, true
}

func (dec *Decoder) ExpectLiteralReader() (lit *LiteralReader, nonSync bool, err error) {
	lit, nonSync, ok := dec.LiteralReader()
	if !dec.Expect(ok, "literal") {
		return nil, false, dec.Err()
	}
	return lit, nonSync, nil
}

type LiteralReader struct {
	dec  *Decoder
	size int64
	r    io.Reader
}

func newLiteralReaderFromString(s string) *LiteralReader {
	return &LiteralReader{
		size: int64(len(s)),
		r:    strings.NewReader(s),
	}
}

func (lit *LiteralReader) Size() int64 {
	return lit.size
}

func (lit *LiteralReader) Read(b []byte) (int, error) {
	n, err := lit.r.Read(b)
	if err == io.EOF {
		lit.cancel()
	}
	return n, err
}

func (lit *LiteralReader) cancel() {
	if lit.dec == nil {
		return
	}
	lit.dec.literal = false
	lit.dec = nil
}
