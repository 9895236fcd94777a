"""Drive CONTEXT=SEARCH (RFC 5267) with Python's imaplib: PARTIAL, an
UPDATE search told of another connection's changes at NOOP (ADDTO,
REMOVEFROM), CANCELUPDATE. imaplib has no helpers for them: raw commands
through _simple_command, the ESEARCH lines read from its untagged
responses.

Run by TestPythonImaplibContext with IMAP_HOST, IMAP_PORT, IMAP_USER,
IMAP_PASS set. Exits non-zero (with a message) on the first surprise.
"""
import imaplib
import os
import re
import sys

imaplib.Commands.update({"CANCELUPDATE": ("SELECTED",)})


def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)


def ok(resp, what):
    typ, data = resp
    check(typ == "OK", f"{what}: {typ} {data!r}")
    return data


def esearch(m, typ, data):
    """The ESEARCH lines of the last command, as text."""
    typ, data = m._untagged_response(typ, data, "ESEARCH")
    return [d.decode() for d in data if d is not None]


def connect():
    m = imaplib.IMAP4(os.environ["IMAP_HOST"], int(os.environ["IMAP_PORT"]))
    ok(m.login(os.environ["IMAP_USER"], os.environ["IMAP_PASS"]), "login")
    return m


m = connect()
typ, data = m.capability()
check(b"CONTEXT=SEARCH" in data[0].split(), f"CONTEXT=SEARCH not in {data!r}")
for i in range(1, 7):
    ok(m.append("INBOX", None, None,
                b"Subject: m%d\r\n\r\n%s\r\n" % (i, b"needle" if i % 2 else b"hay")), "append")
ok(m.select("INBOX"), "select")

# RFC 5267 4.4: PARTIAL, positions of the result.
typ, data = m._simple_command("UID", "SEARCH", "RETURN", "(PARTIAL 2:3)", "BODY", "needle")
check(typ == "OK", f"PARTIAL: {typ} {data!r}")
lines = esearch(m, typ, data)
check(len(lines) == 1 and lines[0].endswith("UID PARTIAL (2:3 3,5)"), f"PARTIAL: {lines!r}")

# UPDATE: the result now, then what changes.
typ, data = m._simple_command("SEARCH", "RETURN", "(UPDATE ALL)", "SEEN")
check(typ == "OK", f"UPDATE: {typ} {data!r}")
lines = esearch(m, typ, data)
check(len(lines) == 1, f"UPDATE: {lines!r}")
tag = re.match(r'\(TAG "([^"]+)"\)', lines[0]).group(1)

o = connect()
ok(o.select("INBOX"), "other select")
ok(o.store("2,3", "+FLAGS", "(\\Seen)"), "other store")
typ, data = m.noop()
lines = esearch(m, typ, data)
check(lines == [f'(TAG "{tag}") ADDTO (0 2:3)'], f"after another's STORE: {lines!r}")

ok(o.store("3", "+FLAGS", "(\\Deleted)"), "other store deleted")
ok(o.expunge(), "other expunge")
typ, data = m.noop()
lines = esearch(m, typ, data)
check(lines == [f'(TAG "{tag}") REMOVEFROM (0 3)'], f"after another's EXPUNGE: {lines!r}")

ok(o.append("INBOX", "(\\Seen)", None, b"Subject: m7\r\n\r\nnew\r\n"), "other append")
typ, data = m.noop()
lines = esearch(m, typ, data)
check(lines == [f'(TAG "{tag}") ADDTO (0 6)'], f"after another's APPEND: {lines!r}")

# RFC 5267 4.3.5: CANCELUPDATE, then nothing more.
ok(m._simple_command("CANCELUPDATE", f'"{tag}"'), "cancelupdate")
ok(o.store("1", "+FLAGS", "(\\Seen)"), "other store after cancel")
typ, data = m.noop()
check(esearch(m, typ, data) == [], "ESEARCH after CANCELUPDATE")
typ, data = m._simple_command("CANCELUPDATE", f'"{tag}"')
check(typ == "NO", f"CANCELUPDATE again: {typ} {data!r}")

o.logout()
m.logout()
print("imaplib context OK")
