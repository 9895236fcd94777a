//go:build !race

package imapfront_test

const raceEnabled = false
