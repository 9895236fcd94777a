"""Drive Mailferry's POP3 server with Python's poplib (a third-party client).

Environment: POP_HOST, POP_PORT, POP_USER, POP_PASS, POP_STLS ("1": STLS
first, certificate not checked), EXPECT_DIR (the expected messages, one file
per message number: 1.eml, 2.eml, ...), POP_DELE (a message number to
delete before QUIT, or empty), POP_UIDLS (a file of the expected "UIDL"
lines, or empty). Prints "poplib OK" when every check passed.
"""
import os
import poplib
import ssl
import sys


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


host, port = os.environ["POP_HOST"], int(os.environ["POP_PORT"])
user, password = os.environ["POP_USER"], os.environ["POP_PASS"]
expect_dir = os.environ["EXPECT_DIR"]
expected = []
n = 1
while os.path.exists(os.path.join(expect_dir, "%d.eml" % n)):
    with open(os.path.join(expect_dir, "%d.eml" % n), "rb") as f:
        expected.append(f.read())
    n += 1

p = poplib.POP3(host, port, timeout=30)
if os.environ.get("POP_STLS") == "1":
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    p.stls(ctx)

# A wrong password is -ERR [AUTH] (RFC 3206).
p.user(user)
try:
    p.pass_("wrong-" + password)
    fail("wrong password accepted")
except poplib.error_proto as e:
    if not str(e).startswith("b'-ERR [AUTH]"):
        fail("wrong password answered %r" % e)

# Bad commands and an over-long line are -ERR, and the session goes on.
for bad in (b"BOGUS", b"RETR 1", b"X" * 5000):
    try:
        p._shortcmd(bad.decode())
        fail("%r accepted" % bad[:20])
    except poplib.error_proto:
        pass

p.user(user)
p.pass_(password)
count, size = p.stat()
if count != len(expected):
    fail("STAT %d messages, want %d" % (count, len(expected)))
if size != sum(len(m) for m in expected):
    fail("STAT %d octets, want %d" % (size, sum(len(m) for m in expected)))
_, listing, _ = p.list()
for i, line in enumerate(listing):
    num, octets = line.split()
    if int(num) != i + 1 or int(octets) != len(expected[i]):
        fail("LIST line %r, want %d %d" % (line, i + 1, len(expected[i])))

uidl_file = os.environ.get("POP_UIDLS")
if uidl_file:
    with open(uidl_file, "rb") as f:
        want = f.read().split(b"\n")
    want = [w for w in want if w]
    _, got, _ = p.uidl()
    if got != want:
        fail("UIDL %r, want %r" % (got, want))

for i, raw in enumerate(expected):
    # poplib strips the CRLFs and undoes the dot-stuffing.
    _, lines, _ = p.retr(i + 1)
    got = b"\r\n".join(lines) + b"\r\n"
    if got != raw:
        fail("RETR %d: %r, want %r" % (i + 1, got[:200], raw[:200]))
    _, lines, _ = p.top(i + 1, 0)
    got = b"\r\n".join(lines) + b"\r\n"
    head = raw[: raw.index(b"\r\n\r\n") + 4]
    if got != head:
        fail("TOP %d 0: %r, want %r" % (i + 1, got, head))

dele = os.environ.get("POP_DELE")
if dele:
    p.dele(int(dele))
p.quit()
print("poplib OK")
