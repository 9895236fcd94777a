//go:build linux

package migrate

import (
	"os"
	"strings"
)

// machine names the space in which this process's IDs mean something: the
// boot (/proc/sys/kernel/random/boot_id) and the PID namespace (a
// container has its own). Two processes with one machine see each other's
// IDs; "" if it cannot be read.
func machine() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid") // "pid:[4026531836]"
	if err != nil {
		return ""
	}
	ns = strings.TrimSuffix(strings.TrimPrefix(ns, "pid:["), "]")
	id := strings.TrimSpace(string(boot)) + "/" + ns
	if strings.ContainsAny(id, " \t\r\n") {
		return ""
	}
	return id
}
