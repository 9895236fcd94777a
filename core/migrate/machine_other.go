//go:build !linux

package migrate

// machine names the space in which this process's IDs mean something; ""
// where it cannot be told (a holder is then taken as of this machine when
// its node name is this one's).
func machine() string { return "" }
