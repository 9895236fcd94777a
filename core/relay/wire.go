package relay

import "bytes"

// wireForm returns msg in the form in which it leaves Mailferry over SMTP
// (to an old server, an exchanger or a smarthost): every line ended by
// <CR><LF>, a bare <LF> made <CR><LF> and a stray <CR> (one not before an
// <LF>) a space, as Postfix 3.9 treats mail it receives
// (smtpd_forbid_bare_newline = normalize) and sends on
// (cleanup_replace_stray_cr_lf). A stray <CR> or <LF> is how SMTP
// smuggling (CVE-2023-51764) splits a second message off the first at a
// server that takes <LF>.<CR><LF> or <CR>.<CR><LF> for the end of DATA:
// the old server trusts us, so such a second message would go out with
// our trust. Our own SMTP reader takes only <CR><LF>.<CR><LF> for the end
// and the DATA writer (net/textproto) already sends a bare <LF> as
// <CR><LF>; this makes the stray <CR> harmless too and puts the bytes in
// their final form before they are signed (DKIM). msg itself is returned,
// not copied, when it has nothing stray, as nearly all mail has. The
// local copies keep the bytes as received.
func wireForm(msg []byte) []byte {
	if !hasStrayNewline(msg) {
		return msg
	}
	out := make([]byte, 0, len(msg)+len(msg)/64+2)
	for i := 0; i < len(msg); i++ {
		switch c := msg[i]; {
		case c == '\r' && i+1 < len(msg) && msg[i+1] == '\n':
			out = append(out, '\r', '\n')
			i++
		case c == '\r':
			out = append(out, ' ')
		case c == '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}

// hasStrayNewline reports whether msg holds an <LF> not after a <CR>, or a
// <CR> not before an <LF>: when every <LF> follows a <CR>, a stray <CR> is
// one more <CR> than there are <LF>s.
func hasStrayNewline(msg []byte) bool {
	lf := 0
	for i := 0; ; {
		j := bytes.IndexByte(msg[i:], '\n')
		if j < 0 {
			break
		}
		j += i
		if j == 0 || msg[j-1] != '\r' {
			return true
		}
		lf++
		i = j + 1
	}
	return bytes.Count(msg, []byte{'\r'}) != lf
}
