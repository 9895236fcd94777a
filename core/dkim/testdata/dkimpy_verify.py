"""Verify every DKIM-Signature of a message with dkimpy (Debian's python3-dkim).

usage: dkimpy_verify.py MESSAGE ZONE.json
ZONE.json maps DNS names (no final dot) to the text of their TXT record.
Prints one line per signature, "<index> <selector> pass|fail", and exits 0
when every signature verified, 1 otherwise.
"""
import json
import sys

import dkim


def main():
    msg = open(sys.argv[1], "rb").read()
    zone = json.load(open(sys.argv[2]))

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        txt = zone.get(name.rstrip("."))
        return txt.encode() if txt is not None else None

    d = dkim.DKIM(msg)
    n = 0
    ok = True
    for line in msg.split(b"\n"):
        if line.strip() == b"":
            break
        if line.lower().startswith(b"dkim-signature:"):
            n += 1
    if n == 0:
        print("no signature")
        sys.exit(1)
    for i in range(n):
        res = d.verify(idx=i, dnsfunc=dnsfunc)
        sel = d.signature_fields.get(b"s", b"?").decode()
        print(i, sel, "pass" if res else "fail")
        ok = ok and res
    sys.exit(0 if ok else 1)


main()
