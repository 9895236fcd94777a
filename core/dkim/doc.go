// Package dkim is Mailferry's mail authentication: the per-domain DKIM keys
// (RFC 6376; Ed25519-SHA256 per RFC 8463 and RSA-SHA256), signing of
// outbound mail, the DNS records an admin publishes (DKIM, SPF per RFC 7208,
// DMARC per RFC 7489), and the Authentication-Results header (RFC 8601)
// given to inbound mail after SPF, DKIM and DMARC checks.
//
// Signing and verification are github.com/emersion/go-msgauth's; SPF is
// blitiri.com.ar/go/spf's. This room owns the keys, the policy around them
// and the words shown to the admin.
//
// Keys live in the data directory, one folder per domain:
//
//	<data>/dkim/                      0700
//	<data>/dkim/<domain>/             0700
//	<data>/dkim/<domain>/state.json   0600  which generation is active, pending, retired
//	<data>/dkim/<domain>/<sel>.pem    0600  PKCS #8 private key, one per selector
//
// A generation is a pair of keys made together and named by the month it
// was made: mf202612e (Ed25519) and mf202612r (RSA-2048); a second
// generation in the same month is mf202612-2e / mf202612-2r. Mail is signed
// with both keys of the active generation, so a verifier that knows only RSA
// still sees a valid signature.
//
// Rotation has two steps, because a key must be in DNS before mail signed
// with it leaves: Rotate makes a pending generation (its records are shown
// to publish, mail is still signed with the active one); Activate makes it
// the active one once DNS serves it. The generation it replaces is retired:
// no longer used to sign, its record still listed (to keep in DNS, so mail
// already sent still verifies) until Options.RetiredKeep has passed, then
// its files are removed.
//
// The two functions the SMTP relay calls:
//   - Keyring.Sign(domain, msg) on outbound mail of a local domain: returns
//     msg with DKIM-Signature headers prepended (keys are made on first use);
//   - Verifier.AuthenticationResults(ctx, session, msg) on inbound mail:
//     returns the Authentication-Results header field to prepend.
//
// Invariants:
//   - Sign changes nothing in a message but prepend DKIM-Signature fields
//     (relaxed/relaxed canonicalization, From oversigned so no From can be
//     added after signing); the bytes after them are the caller's, exactly.
//   - Private keys are only ever written to files of mode 0600 in folders of
//     mode 0700, created with O_EXCL so an existing key is never
//     overwritten; state.json is replaced atomically (write, sync, rename).
//     A crash leaves the previous state, at worst with an unused key file.
//   - Within one Keyring, key changes are serialised by its mutex. Two
//     processes that rotate one domain at the same moment can lose one of
//     the two rotations, never a key in use (state.json names only keys
//     whose files were complete before it was written).
//   - Verification never fails a message: every DNS or parse problem
//     becomes a temperror/permerror/none result in the header. Its results
//     are facts for the user's filters; Mailferry never drops or refuses
//     mail on them.
//   - Every DNS question goes through the Resolver the caller passes, with
//     the caller's context; nothing here has global state or goroutines of
//     its own beyond the ones go-msgauth runs (and ends) within one call.
//   - Hostile input (no header, huge header fields, bare LF line ends,
//     non-UTF-8 bytes) yields an error or a "none"/"permerror" result,
//     never a panic; a header section over 256 KiB or with a field of over
//     1000 lines is neither signed (ErrHeaderTooLarge) nor verified
//     (dkim=permerror), as go-msgauth's header reader is quadratic in a
//     field's lines. Values put in the header field are printable ASCII
//     only, so no sender can add a line to it.
package dkim
