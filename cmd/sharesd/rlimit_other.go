//go:build !unix

package main

// openFileLimit is 1024 where the open-file limit cannot be read.
func openFileLimit() uint64 { return 1024 }
