"""Drive Mailferry's IMAP server with Python's imaplib, a third-party client.

Run by TestPythonImaplib with IMAP_HOST, IMAP_PORT, IMAP_USER, IMAP_PASS set.
Exits non-zero (with a message) on the first surprise.
"""
import imaplib
import os
import re
import sys

MSG = (b"From: Bob <bob@example.test>\r\nTo: alice@example.test\r\n"
       b"Subject: =?utf-8?q?=C3=89t=C3=A9?=\r\nMessage-ID: <py1@example.test>\r\n\r\n"
       b"Bonjour \xc3\xa0 tous.\r\nno final newline")


def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)


def ok(resp, what):
    typ, data = resp
    check(typ == "OK", f"{what}: {typ} {data!r}")
    return data


m = imaplib.IMAP4(os.environ["IMAP_HOST"], int(os.environ["IMAP_PORT"]))
check("IMAP4REV1" in m.capabilities, f"capabilities {m.capabilities}")
try:
    m.login(os.environ["IMAP_USER"], "wrong password")
    check(False, "login with a wrong password succeeded")
except imaplib.IMAP4.error as e:
    check("AUTHENTICATIONFAILED" in str(e), f"wrong password: {e}")
ok(m.login(os.environ["IMAP_USER"], os.environ["IMAP_PASS"]), "login")
# "Données/Été 2020" in modified UTF-7.
ok(m.create('"Donn&AOk-es/&AMk-t&AOk- 2020"'), "create UTF-7")
data = ok(m.list(), "list")
names = b"\n".join(data)
check(b'"Donn&AOk-es/&AMk-t&AOk- 2020"' in names, f"list {names!r}")
data = ok(m.append("INBOX", r"(\Flagged)", imaplib.Time2Internaldate(1700000000), MSG), "append")
check(b"APPENDUID" in data[0], f"append {data!r}")
data = ok(m.select("INBOX"), "select")
check(data[0] == b"1", f"select {data!r}")
typ, data = m.fetch("1", "(BODY.PEEK[] RFC822.SIZE FLAGS ENVELOPE)")
check(typ == "OK", f"fetch {typ}")
check(data[0][1] == MSG, f"BODY[] differs: {data[0][1]!r}")
check(b"RFC822.SIZE %d" % len(MSG) in data[0][0], f"size {data[0][0]!r}")
check(b"\\Flagged" in data[0][0], f"flags {data[0][0]!r}")
data = ok(m.search(None, "FROM", "bob"), "search")
check(data == [b"1"], f"search {data!r}")
data = ok(m.uid("SEARCH", "TEXT", "tous"), "uid search")
check(data == [b"1"], f"uid search {data!r}")
ok(m.store("1", "+FLAGS", r"(\Deleted)"), "store")
typ, data = m.uid("COPY", "1", '"Donn&AOk-es/&AMk-t&AOk- 2020"')
check(typ == "OK", f"copy {typ} {data!r}")
check(m.untagged_responses.get("COPYUID") or b"COPYUID" in (data[0] or b""), f"copyuid {data!r}")
data = ok(m.expunge(), "expunge")
check(data == [b"1"], f"expunge {data!r}")
data = ok(m.status('"Donn&AOk-es/&AMk-t&AOk- 2020"', "(MESSAGES UIDNEXT)"), "status")
check(re.search(rb"MESSAGES 1", data[0]) is not None, f"status {data!r}")
ok(m.rename('"Donn&AOk-es"', "Archive"), "rename")
data = ok(m.list('""', "Archive*"), "list after rename")
check(len(data) == 2, f"list after rename {data!r}")
ok(m.close(), "close")
m.logout()
print("imaplib OK")
