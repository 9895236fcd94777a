"""CATENATE (RFC 4469) from Python's imaplib: an APPEND whose message is a
TEXT part (a LITERAL+ literal) and a URL to the first message's first part,
sent as a raw command (imaplib's _simple_command); the message read back
must be the TEXT's bytes then the part's, as FETCH BODY.PEEK[1] gives
them."""
import imaplib
import os
import sys

m = imaplib.IMAP4(os.environ["IMAP_HOST"], int(os.environ["IMAP_PORT"]))
m.login(os.environ["IMAP_USER"], os.environ["IMAP_PASS"])
typ, data = m.capability()
if b"CATENATE" not in data[0].split():
    sys.exit("no CATENATE in %r" % (data,))
m.select("INBOX")
typ, data = m.uid("FETCH", "1", "(BODY.PEEK[1])")
part = data[0][1]
head = "Subject: made by CATENATE\r\n\r\n"
typ, data = m._simple_command(
    "APPEND", "INBOX",
    'CATENATE (TEXT {%d+}\r\n%s URL "/INBOX/;UID=1/;SECTION=1")' % (len(head), head))
if typ != "OK":
    sys.exit("APPEND CATENATE: %s %r" % (typ, data))
typ, data = m.response("APPENDUID")
uid = data[0].split()[1].decode()
typ, data = m.uid("FETCH", uid, "(BODY.PEEK[])")
got = data[0][1]
if got != head.encode() + part:
    sys.exit("got %r, want %r" % (got, head.encode() + part))
# A URL to a part that does not exist: NO [BADURL], nothing appended.
typ, data = m._simple_command("APPEND", "INBOX", 'CATENATE (URL "/INBOX/;UID=1/;SECTION=7")')
if typ != "NO" or b"BADURL" not in data[0]:
    sys.exit("bad URL: %s %r" % (typ, data))
m.logout()
print("imaplib catenate OK")
