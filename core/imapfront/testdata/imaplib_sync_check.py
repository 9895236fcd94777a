"""Drive Mailferry's CONDSTORE, QRESYNC, ESEARCH, SEARCHRES, SORT (with
SORT=DISPLAY and ESORT) and THREAD with Python's imaplib, a third-party client (its ENABLE, SORT,
THREAD and UID commands, and raw arguments where imaplib has no helper).

Run by TestPythonImaplibSync with IMAP_HOST, IMAP_PORT, IMAP_USER, IMAP_PASS.
Exits non-zero (with a message) on the first surprise.
"""
import imaplib
import os
import re
import sys


def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)


def ok(resp, what):
    typ, data = resp
    check(typ == "OK", f"{what}: {typ} {data!r}")
    return data


def untagged(m, name):
    return m.untagged_responses.pop(name, [])


m = imaplib.IMAP4(os.environ["IMAP_HOST"], int(os.environ["IMAP_PORT"]))
ok(m.login(os.environ["IMAP_USER"], os.environ["IMAP_PASS"]), "login")
caps = ok(m.capability(), "capability")[-1].decode().upper().split()
m.capabilities = tuple(caps)
for cap in ("CONDSTORE", "QRESYNC", "ESEARCH", "SEARCHRES", "SORT",
            "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "ENABLE"):
    check(cap in caps, f"capability {cap} missing: {caps}")

for i, (subj, ref) in enumerate([("plans", ""), ("Re: plans", "<s1@py>"),
                                  ("lunch", ""), ("Re: [team] plans", "<s2@py>")]):
    msg = (f"From: u{i}@example.test\r\nSubject: {subj}\r\nMessage-ID: <s{i + 1}@py>\r\n"
           f"Date: Mon, 0{i + 1} Jan 2024 10:00:00 +0000\r\n"
           + (f"References: {ref}\r\n" if ref else "") + "\r\nbody\r\n").encode()
    ok(m.append("INBOX", None, None, msg), "append")

ok(m.enable("QRESYNC"), "enable QRESYNC")
check(any(b"QRESYNC" in d for d in untagged(m, "ENABLED")), "ENABLED QRESYNC")
data = ok(m.status("INBOX", "(HIGHESTMODSEQ UIDVALIDITY)"), "status")
hms = re.search(rb"HIGHESTMODSEQ (\d+)", data[0])
uv = re.search(rb"UIDVALIDITY (\d+)", data[0])
check(hms and uv, f"status {data!r}")
modseq, uidvalidity = int(hms.group(1)), int(uv.group(1))

ok(m.select("INBOX"), "select")
codes = untagged(m, "HIGHESTMODSEQ")
check(codes and int(codes[-1]) == modseq, f"HIGHESTMODSEQ {codes!r} != {modseq}")

# CONDSTORE: FETCH MODSEQ, conditional STORE, CHANGEDSINCE, SEARCH MODSEQ.
data = ok(m.fetch("1:*", "(UID MODSEQ)"), "fetch modseq")
check(len(data) == 4 and all(b"MODSEQ (" in d for d in data), f"fetch modseq {data!r}")
ok(m.store("2", "+FLAGS", r"(\Seen)"), "store")
data = ok(m.store("1:2", f"(UNCHANGEDSINCE {modseq}) +FLAGS", r"(\Flagged)"), "conditional store")
check(untagged(m, "MODIFIED") == [b"2"], f"MODIFIED: {data!r}")
data = ok(m.fetch("1:*", f"(FLAGS) (CHANGEDSINCE {modseq})"), "fetch changedsince")
check(len(data) == 2 and b"\\Flagged" in data[0] and b"\\Seen" in data[1], f"changedsince {data!r}")
data = ok(m.search(None, "MODSEQ", str(modseq + 1)), "search modseq")
check(re.match(rb"1 2 \(MODSEQ \d+\)$", data[0]), f"search modseq {data!r}")

# ESEARCH and SEARCHRES.
data = ok(m.search(None, "RETURN", "(MIN MAX COUNT)", "ALL"), "esearch")
check(any(re.search(rb"MIN 1 MAX 4 COUNT 4", d) for d in untagged(m, "ESEARCH")), f"ESEARCH {data!r}")
ok(m.search(None, "RETURN", "(SAVE)", "SUBJECT", "plans"), "search save")
data = ok(m.fetch("$", "(UID)"), "fetch $")
check(len(data) == 3, f"fetch $ {data!r}")

# SORT and THREAD, with imaplib's own commands.
data = ok(m.sort("(SUBJECT REVERSE DATE)", "UTF-8", "ALL"), "sort")
check(data == [b"3 4 2 1"], f"sort {data!r}")
data = ok(m.uid("SORT", "(DATE)", "UTF-8", "ALL"), "uid sort")
check(data == [b"1 2 3 4"], f"uid sort {data!r}")
# SORT=DISPLAY (RFC 5957): no display names, so by addr-spec u0@ .. u3@.
check("SORT=DISPLAY" in caps, f"capability SORT=DISPLAY missing: {caps}")
data = ok(m.sort("(REVERSE DISPLAYFROM)", "UTF-8", "ALL"), "sort displayfrom")
check(data == [b"4 3 2 1"], f"sort displayfrom {data!r}")
# ESORT (RFC 5267): SORT RETURN answered with ESEARCH, ALL in the sort order.
check("ESORT" in caps, f"capability ESORT missing: {caps}")
ok(m._simple_command("SORT", "RETURN", "(MIN MAX COUNT ALL)", "(REVERSE DISPLAYFROM)", "UTF-8", "ALL"), "esort")
es = untagged(m, "ESEARCH")
check(any(d.endswith(b"MIN 4 MAX 1 ALL 4,3,2,1 COUNT 4") for d in es), f"ESORT {es!r}")
data = ok(m.thread("REFERENCES", "UTF-8", "ALL"), "thread")
check(data == [b"(1 2 4)(3)"], f"thread references {data!r}")
data = ok(m.thread("ORDEREDSUBJECT", "UTF-8", "ALL"), "thread")
check(data == [b"(1 (2)(4))(3)"], f"thread orderedsubject {data!r}")

# QRESYNC: expunge is VANISHED; a new SELECT (QRESYNC ...) resynchronises.
ok(m.store("3", "+FLAGS.SILENT", r"(\Deleted)"), "store deleted")
ok(m.expunge(), "expunge")
check(untagged(m, "VANISHED") == [b"3"], "VANISHED after EXPUNGE")
check(untagged(m, "EXPUNGE") == [], "EXPUNGE after ENABLE QRESYNC")
typ, data = m._simple_command("SELECT", f"INBOX (QRESYNC ({uidvalidity} {modseq}))")
check(typ == "OK", f"select qresync {typ} {data!r}")
m.state = "SELECTED"
vanished = untagged(m, "VANISHED")
check(vanished == [b"(EARLIER) 3"], f"VANISHED (EARLIER): {vanished!r}")
fetches = untagged(m, "FETCH")
check(len(fetches) == 2 and all(b"MODSEQ" in f for f in fetches), f"resync FETCH {fetches!r}")
data = ok(m.uid("FETCH", "1:*", f"(FLAGS) (CHANGEDSINCE {modseq} VANISHED)"), "uid fetch vanished")
check(untagged(m, "VANISHED") == [b"(EARLIER) 3"], "UID FETCH VANISHED")
m.logout()
print("imaplib sync OK")
