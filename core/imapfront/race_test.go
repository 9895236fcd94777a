//go:build race

package imapfront_test

// raceEnabled: the race detector is on (tests of large mailboxes skip:
// it makes them ten times slower, past their clients' read deadlines).
const raceEnabled = true
