//go:build unix

package main

import "syscall"

// openFileLimit is the process's open-file limit (RLIMIT_NOFILE, soft),
// which Go has raised to the hard limit at start on Linux; 1024 if unknown.
func openFileLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur == 0 {
		return 1024
	}
	return r.Cur
}
