//go:build !unix

package store

// fileInode: no inode outside Unix; SQLite's place is not known there.
func fileInode(string) uint64 { return 0 }
