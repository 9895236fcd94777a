#!/usr/bin/env python3
"""A third-party IMAP client (Python's imaplib) for Mailferry's black-box tests.

  imapclient.py store  HOST PORT USER PASS SPEC STATE   APPEND every message in SPEC, record UIDs in STATE
  imapclient.py verify HOST PORT USER PASS SPEC STATE   read everything back and compare with SPEC and STATE

SPEC is JSON: {"folders": [{"name": "Données/Été 2020", "subscribe": true}],
               "messages": [{"folder": ..., "file": ..., "flags": [...], "date": "RFC 3501 date-time"}]}.
Exits non-zero with a message on the first difference.
"""
import base64
import hashlib
import imaplib
import json
import re
import ssl
import sys

imaplib._MAXLINE = 10_000_000


def mutf7(name):
    """RFC 3501 5.1.3 modified UTF-7, as a client must send non-ASCII names."""
    out, buf = [], []

    def flush():
        if buf:
            b = "".join(buf).encode("utf-16-be")
            out.append("&" + base64.b64encode(b).decode().rstrip("=").replace("/", ",") + "-")
            buf.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


def quote(name):
    return '"' + mutf7(name).replace("\\", "\\\\").replace('"', '\\"') + '"'


def check(typ, data, what):
    if typ != "OK":
        sys.exit(f"{what}: {typ} {data}")
    return data


def connect(host, port, user, password):
    c = imaplib.IMAP4(host, int(port))
    # Mailferry's certificate is self-signed on a fresh install: encrypt,
    # as a real client must before it may log in, without verifying.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    check(*c.starttls(ssl_context=ctx), "STARTTLS")
    check(*c.login(user, password), "LOGIN")
    return c


def status(c, folder):
    data = check(*c.status(quote(folder), "(UIDVALIDITY UIDNEXT MESSAGES)"), "STATUS " + folder)
    item = lambda k: int(re.search(k.encode() + rb" (\d+)", data[0]).group(1))
    return item("UIDVALIDITY"), item("UIDNEXT"), item("MESSAGES")


def store(c, spec, state_path):
    for f in spec["folders"]:
        check(*c.create(quote(f["name"])), "CREATE " + f["name"])
        if f.get("subscribe"):
            check(*c.subscribe(quote(f["name"])), "SUBSCRIBE " + f["name"])
    state = {"messages": [], "uidvalidity": {}}
    for m in spec["messages"]:
        raw = open(m["file"], "rb").read()
        flags = "(" + " ".join(m["flags"]) + ")"
        typ, data = c.append(quote(m["folder"]), flags, '"' + m["date"] + '"', raw)
        data = check(typ, data, "APPEND " + m["file"])
        got = re.search(rb"APPENDUID (\d+) (\d+)", data[0])
        if not got:
            sys.exit(f"APPEND {m['file']}: no APPENDUID in {data!r}")
        state["messages"].append({"uid": int(got.group(2)), "uidvalidity": int(got.group(1))})
    for f in ["INBOX"] + [f["name"] for f in spec["folders"]]:
        state["uidvalidity"][f] = status(c, f)[0]
    json.dump(state, open(state_path, "w"))
    print(f"stored {len(spec['messages'])} messages")


def verify(c, spec, state_path):
    state = json.load(open(state_path))
    # Subscriptions: LSUB lists exactly the subscribed folders (and INBOX).
    data = check(*c.lsub(), "LSUB")
    subscribed = {decode_list_name(l) for l in data if l}
    for f in spec["folders"]:
        if bool(f.get("subscribe")) != (f["name"] in subscribed):
            sys.exit(f"subscription of {f['name']!r} lost: LSUB says {sorted(subscribed)}")
    for f, uv in state["uidvalidity"].items():
        if status(c, f)[0] != uv:
            sys.exit(f"UIDVALIDITY of {f!r} changed")
    for m, st in zip(spec["messages"], state["messages"]):
        check(*c.select(quote(m["folder"]), readonly=True), "EXAMINE " + m["folder"])
        typ, data = c.uid("FETCH", str(st["uid"]), "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
        data = check(typ, data, "FETCH")
        parts = [d for d in data if isinstance(d, tuple)]
        if len(parts) != 1:
            sys.exit(f"UID {st['uid']} in {m['folder']!r}: fetched {data!r}")
        meta, body = parts[0]
        raw = open(m["file"], "rb").read()
        if body != raw:
            sys.exit(f"{m['file']}: BODY[] differs: sha256 {hashlib.sha256(body).hexdigest()} != {hashlib.sha256(raw).hexdigest()} ({len(body)} vs {len(raw)} bytes)")
        size = int(re.search(rb"RFC822\.SIZE (\d+)", meta).group(1))
        if size != len(raw):
            sys.exit(f"{m['file']}: RFC822.SIZE {size}, want {len(raw)}")
        # \Recent belongs to the session (RFC 3501 2.3.2), not the message.
        flags = set(re.search(rb"FLAGS \(([^)]*)\)", meta).group(1).decode().split()) - {"\\Recent"}
        if flags != set(m["flags"]):
            sys.exit(f"{m['file']}: FLAGS {sorted(flags)}, want {sorted(m['flags'])}")
        date = re.search(rb'INTERNALDATE "([^"]+)"', meta).group(1).decode()
        if imaplib.Internaldate2tuple(b'INTERNALDATE "' + date.encode() + b'"') != imaplib.Internaldate2tuple(b'INTERNALDATE "' + m["date"].encode() + b'"') or date[-5:] != m["date"][-5:]:
            sys.exit(f"{m['file']}: INTERNALDATE {date!r}, want {m['date']!r}")
    print(f"verified {len(spec['messages'])} messages")


def decode_list_name(line):
    name = line.rsplit(b" ", 1)[-1] if not line.endswith(b'"') else re.search(rb'"((?:[^"\\]|\\.)*)"$', line).group(1)
    name = name.decode()
    def dec(m):
        s = m.group(1)
        if s == "":
            return "&"
        s = s.replace(",", "/")
        return base64.b64decode(s + "=" * (-len(s) % 4)).decode("utf-16-be")
    return re.sub(r"&([^-]*)-", dec, name)


def main():
    mode, host, port, user, password, spec_path, state_path = sys.argv[1:8]
    spec = json.load(open(spec_path, encoding="utf-8"))
    c = connect(host, port, user, password)
    {"store": store, "verify": verify}[mode](c, spec, state_path)
    c.logout()


if __name__ == "__main__":
    main()
