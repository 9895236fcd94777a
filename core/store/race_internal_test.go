//go:build race

package store

// raceEnabled: the race detector is on (its shadow memory faults too).
const raceEnabled = true
