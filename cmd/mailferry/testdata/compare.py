#!/usr/bin/env python3
"""Compare a mailbox on the old server with its copy on Mailferry, with imaplib.

  compare.py OLDHOST OLDPORT NEWHOST NEWPORT USER PASS [TIMEOUT]

Logs in to Mailferry first (which starts the migration of a new user), then
waits until every folder holds as many messages as on the old server, and
compares every folder: name (by hierarchy levels, whatever the separators),
subscription, special-use, UIDVALIDITY, and each message's UID, FLAGS,
INTERNALDATE and the sha256 of BODY[]. Exits non-zero on the first difference.
"""
import hashlib
import imaplib
import re
import ssl
import sys
import time

imaplib._MAXLINE = 10_000_000
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from imapclient import decode_list_name, mutf7  # noqa: E402

LIST_RE = re.compile(rb'\(([^)]*)\) (?:"((?:[^"\\]|\\.)*)"|NIL) (.*)$')


def login(host, port, user, password, tls):
    c = imaplib.IMAP4(host, int(port))
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c.starttls(ssl_context=ctx)
    typ, data = c.login(user, password)
    if typ != "OK":
        sys.exit(f"LOGIN at {host}:{port}: {data}")
    return c


def folders(c):
    """{levels tuple: (name on the wire, attributes set, subscribed)}"""
    out = {}
    typ, data = c.list()
    subs = {decode_list_name(l) for l in c.lsub()[1] if l}
    for line in data:
        m = LIST_RE.match(line)
        attrs = set(m.group(1).decode().lower().split())
        delim = m.group(2).decode() if m.group(2) else None
        name = decode_list_name(line)
        levels = tuple(name.split(delim)) if delim else (name,)
        out[levels] = (name, attrs, name in subs)
    return out


def messages(c, name):
    typ, _ = c.select('"' + mutf7(name).replace('"', '\\"') + '"', readonly=True)
    if typ != "OK":
        return None, {}
    uv = int(re.search(rb"UIDVALIDITY (\d+)", c.status('"' + mutf7(name) + '"', "(UIDVALIDITY)")[1][0]).group(1))
    typ, data = c.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
    out = {}
    for d in data:
        if not isinstance(d, tuple):
            continue
        meta, body = d
        uid = int(re.search(rb"UID (\d+)", meta).group(1))
        flags = frozenset(f for f in re.search(rb"FLAGS \(([^)]*)\)", meta).group(1).decode().split() if f != "\\Recent")
        date = re.search(rb'INTERNALDATE "([^"]+)"', meta).group(1).decode()
        # " 5-May-2021" and "05-May-2021" are the same date-day-fixed
        # (RFC 3501); compare the instant and the zone.
        date = (time.mktime(imaplib.Internaldate2tuple(b'INTERNALDATE "' + date.encode() + b'"')), date[-5:])
        out[uid] = (flags, date, hashlib.sha256(body).hexdigest(), len(body))
    return uv, out


SPECIAL = {"\\sent", "\\drafts", "\\trash", "\\junk", "\\archive", "\\all", "\\flagged"}


def main():
    oh, op, nh, np_, user, pw = sys.argv[1:7]
    timeout = float(sys.argv[7]) if len(sys.argv) > 7 else 120
    new = login(nh, np_, user, pw, tls=True)   # this login starts the migration
    old = login(oh, op, user, pw, tls=False)
    old_f = folders(old)
    want = {}
    total = 0
    for levels, (name, attrs, _) in old_f.items():
        if "\\noselect" in attrs or "\\nonexistent" in attrs:
            continue
        want[levels] = messages(old, name)
        total += len(want[levels][1])
    deadline = time.time() + timeout
    while True:
        new_f = folders(new)
        have = {}
        for levels in want:
            if levels in new_f:
                have[levels] = messages(new, new_f[levels][0])
        done = sum(len(h[1]) for h in have.values())
        if len(have) == len(want) and all(len(have[l][1]) >= len(want[l][1]) for l in want):
            break
        if time.time() > deadline:
            sys.exit(f"timeout: {done} of {total} messages in {len(have)} of {len(want)} folders on Mailferry")
        time.sleep(0.2)
    for levels, (name, attrs, sub) in old_f.items():
        if levels not in new_f:
            sys.exit(f"folder {levels} missing on Mailferry (have {sorted(new_f)})")
        nname, nattrs, nsub = new_f[levels]
        if sub != nsub:
            sys.exit(f"folder {levels}: subscribed {nsub} on Mailferry, {sub} on the old server")
        if attrs & SPECIAL != nattrs & SPECIAL:
            sys.exit(f"folder {levels}: special-use {sorted(nattrs & SPECIAL)}, want {sorted(attrs & SPECIAL)}")
    for levels, (uv, msgs) in want.items():
        nuv, nmsgs = have[levels]
        if uv != nuv:
            sys.exit(f"folder {levels}: UIDVALIDITY {nuv}, want {uv}")
        if set(msgs) != set(nmsgs):
            sys.exit(f"folder {levels}: UIDs differ: missing {sorted(set(msgs) - set(nmsgs))}, extra {sorted(set(nmsgs) - set(msgs))}")
        for uid, m in msgs.items():
            if nmsgs[uid] != m:
                sys.exit(f"folder {levels} UID {uid}: Mailferry has {nmsgs[uid]}, old server {m}")
    print(f"identical: {total} messages in {len(want)} folders")


if __name__ == "__main__":
    main()
