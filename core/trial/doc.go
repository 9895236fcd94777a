// Package trial is the pre-purchase test migration: it sends sample
// messages through the old server, waits for them on the old server's IMAP,
// watches the test account's migration through Mailferry's own IMAP front
// end (as the user's mail client would) and checks every sample there, byte
// for byte, into a report.
//
// The steps, in order: SendSamples, WaitForSamples, (the caller turns the
// domain's migration on), Trial.Watch and Trial.Check.
//
// Invariants:
//   - The old account's folders are listed with migrate's one folder
//     mapping (migrate.ListFolders): the test waits for, and checks, exactly
//     the folders the engine copies — never a folder of a shared or another
//     user's namespace.
//   - The old server is only read: samples are found with EXAMINE and
//     BODY.PEEK, so no flag changes there.
//   - Mailferry is reached over its IMAP front end with its own certificate
//     pinned (RFC 9051 LOGIN after STARTTLS), never through the store, for
//     anything a user would see; the store is read only for the engine's
//     state of the account.
//   - Progress, states and counts are what the servers and the store say:
//     nothing is taken for done that was not reported done.
package trial
