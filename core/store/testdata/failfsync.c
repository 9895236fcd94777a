// failfsync: an LD_PRELOAD shim for TestFullCommitFsyncFailureStops. While
// the file named by MAILFERRY_FAIL_FSYNC exists, fsync and fdatasync of a
// file whose name ends in "-wal" fail with EIO, as a disk that could not
// write the pages does. SQLite's own fsyncs go through the C library (this
// shim); Go's (*os.File).Sync makes the system call itself and is not
// affected. With MAILFERRY_FAIL_FSYNC_ONCE set, the first failure removes
// the trigger: the next fsync succeeds, as Linux reports a writeback error
// once.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failing(int fd) {
	const char *trigger = getenv("MAILFERRY_FAIL_FSYNC");
	if (trigger == NULL || access(trigger, F_OK) != 0)
		return 0;
	char link[64], target[4096];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof target - 1);
	if (n < 4)
		return 0;
	target[n] = 0;
	return strcmp(target + n - 4, "-wal") == 0;
}

// call fails fd's sync while failing, else calls the C library's name.
static int call(const char *name, int fd) {
	if (failing(fd)) {
		const char *once = getenv("MAILFERRY_FAIL_FSYNC_ONCE");
		if (once != NULL && *once != 0)
			unlink(getenv("MAILFERRY_FAIL_FSYNC"));
		errno = EIO;
		return -1;
	}
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, name);
	return real(fd);
}

int fsync(int fd) { return call("fsync", fd); }

int fdatasync(int fd) { return call("fdatasync", fd); }
