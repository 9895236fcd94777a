"""Drive the extensions of issue 15 with Python's imaplib (raw commands
through its _simple_command/xatom, as imaplib has no helpers for them).

Run by TestPythonImaplibExtensions with IMAP_HOST, IMAP_PORT, IMAP_USER,
IMAP_PASS set. Exits non-zero (with a message) on the first surprise.
"""
import imaplib
import os
import sys

imaplib.Commands.update({"ID": ("NONAUTH", "AUTH", "SELECTED"),
                         "UNSELECT": ("SELECTED",)})


def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)


def ok(resp, what):
    typ, data = resp
    check(typ == "OK", f"{what}: {typ} {data!r}")
    return data


M1 = b"From: a@example.test\r\nSubject: one\r\n\r\nfirst\r\n"
M2 = b"From: b@example.test\r\nSubject: two\r\n\r\nsecond\r\n"

m = imaplib.IMAP4(os.environ["IMAP_HOST"], int(os.environ["IMAP_PORT"]))
check("ID" in m.capabilities, f"ID not offered before login: {m.capabilities}")
# RFC 2971, before login.
typ, data = m._simple_command("ID", '("name" "imaplib" "version" "3")')
check(typ == "OK", f"ID: {typ} {data!r}")
typ, data = m._untagged_response(typ, data, "ID")
check(data and b'"name" "Mailferry"' in data[0], f"ID answer {data!r}")
ok(m.login(os.environ["IMAP_USER"], os.environ["IMAP_PASS"]), "login")
typ, data = m.capability()
caps = data[0].split()
for c in (b"UNSELECT", b"ENABLE", b"MULTIAPPEND", b"LIST-EXTENDED", b"ID"):
    check(c in caps, f"{c!r} not in {caps!r}")
check(any(c.startswith(b"APPENDLIMIT=") for c in caps), f"APPENDLIMIT not in {caps!r}")

# RFC 5161 ENABLE.
typ, data = m._simple_command("ENABLE", "UTF8=ACCEPT")
check(typ == "OK", f"ENABLE: {typ} {data!r}")
typ, data = m._untagged_response(typ, data, "ENABLED")
check(data == [b"UTF8=ACCEPT"], f"ENABLED {data!r}")

# RFC 3502 MULTIAPPEND: imaplib sends one literal per command, so the
# command goes out whole with LITERAL+ literals, and imaplib reads the
# answer.
tag = m._new_tag()
m.send(tag + b" APPEND INBOX () {%d+}\r\n" % len(M1) + M1 +
       b" (\\Seen) {%d+}\r\n" % len(M2) + M2 + b"\r\n")
typ, data = m._command_complete("APPEND", tag)
check(typ == "OK", f"MULTIAPPEND: {typ} {data!r}")
check(b"[APPENDUID " in data[-1] and data[-1].split()[2] == b"1:2]", f"APPENDUID {data!r}")

# RFC 7889 APPENDLIMIT in STATUS.
data = ok(m.status("INBOX", "(MESSAGES APPENDLIMIT)"), "status")
check(b"MESSAGES 2" in data[0] and b"APPENDLIMIT " in data[0], f"status {data!r}")

# RFC 3691 UNSELECT: leaves \Deleted messages alone.
ok(m.select("INBOX"), "select")
ok(m.store("1", "+FLAGS", r"(\Deleted)"), "store")
typ, data = m._simple_command("UNSELECT")
check(typ == "OK", f"UNSELECT: {typ} {data!r}")
m.state = "AUTH"
data = ok(m.status("INBOX", "(MESSAGES)"), "status after UNSELECT")
check(b"MESSAGES 2" in data[0], f"UNSELECT expunged: {data!r}")

# RFC 5258 LIST-EXTENDED with CHILDINFO.
ok(m.create("Parent/Child"), "create")
ok(m.subscribe("Parent/Child"), "subscribe")
typ, data = m._simple_command("LIST", "(SUBSCRIBED RECURSIVEMATCH)", '""', "%")
check(typ == "OK", f"LIST-EXTENDED: {typ} {data!r}")
typ, data = m._untagged_response(typ, data, "LIST")
check(any(b'"Parent"' in d and b'CHILDINFO ("SUBSCRIBED")' in d for d in data), f"CHILDINFO {data!r}")

# RFC 5032 WITHIN, as JavaMail's YoungerTerm/OlderTerm send it: one
# message appended with an INTERNALDATE of 2020, one of now.
check(b"WITHIN" in caps, f"WITHIN not in {caps!r}")
ok(m.create("Within"), "create Within")
ok(m.append("Within", None, imaplib.Time2Internaldate(1577872800), M1), "append old")
ok(m.append("Within", None, None, M2), "append new")
ok(m.select("Within"), "select Within")
data = ok(m.search(None, "YOUNGER", "86400"), "SEARCH YOUNGER")
check(data == [b"2"], f"YOUNGER 86400: {data!r}")
data = ok(m.uid("SEARCH", "OLDER", "86400"), "UID SEARCH OLDER")
check(data == [b"1"], f"OLDER 86400: {data!r}")
try:
    typ, data = m.search(None, "YOUNGER", "0")
    check(False, f"YOUNGER 0 answered {typ} {data!r}")
except imaplib.IMAP4.error as err:  # imaplib raises on BAD
    check("BAD" in str(err), f"YOUNGER 0: {err}")

# THREAD=REFS (SnappyMail's first choice): a reply threads under its
# parent by References; a message that only shares the subject stays
# apart; the thread last written to comes last.
check(b"THREAD=REFS" in caps, f"THREAD=REFS not in {caps!r}")
ok(m.create("Refs"), "create Refs")
for i, (subj, refs, day) in enumerate([("t", "", 1), ("other", "", 2), ("Re: t", "<r1@t>", 3), ("Re: other", "", 4)], 1):
    msg = (f"From: a@example.test\r\nSubject: {subj}\r\nMessage-ID: <r{i}@t>\r\n"
           f"Date: Mon, {day} Jun 2024 10:00:00 +0000\r\n")
    if refs:
        msg += f"References: {refs}\r\n"
    ok(m.append("Refs", None, None, (msg + "\r\nbody\r\n").encode()), "append refs")
ok(m.select("Refs"), "select Refs")
data = ok(m.thread("REFS", "UTF-8", "ALL"), "THREAD REFS")
check(data == [b"(2)(1 3)(4)"], f"THREAD REFS: {data!r}")
data = ok(m.uid("THREAD", "REFS", "UTF-8", "ALL"), "UID THREAD REFS")
check(data == [b"(2)(1 3)(4)"], f"UID THREAD REFS: {data!r}")

# RFC 8970 PREVIEW, as MailKit fetches PreviewText: the preview Dovecot
# makes (quotes skipped, white space folded), and "" without text.
check(b"PREVIEW" in caps, f"PREVIEW not in {caps!r}")
ok(m.create("Preview"), "create Preview")
ok(m.append("Preview", None, None,
            b"From: a@example.test\r\nSubject: p\r\n\r\n  Hi  Bob,\r\n> quoted\r\nsee you\r\n"), "append preview")
ok(m.append("Preview", None, None, b"Subject: img\r\nContent-Type: image/png\r\n\r\nxx\r\n"), "append image")
ok(m.select("Preview"), "select Preview")
data = ok(m.fetch("1:2", "(PREVIEW)"), "FETCH PREVIEW")
check(data == [b'1 (UID 1 PREVIEW "Hi Bob, see you")', b'2 (UID 2 PREVIEW "")'], f"PREVIEW: {data!r}")
data = ok(m.uid("FETCH", "1", "(PREVIEW (LAZY))"), "UID FETCH PREVIEW (LAZY)")
check(data == [b'1 (UID 1 PREVIEW "Hi Bob, see you")'], f"PREVIEW (LAZY): {data!r}")
m.logout()
print("imaplib extensions OK")
