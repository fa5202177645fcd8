package main

import (
	"fmt"
	"io"
	"net/http"
	_ "net/http/pprof" // served only with -pprof
	"os"
	"runtime"
	"runtime/pprof"
)

// startProfiling serves net/http/pprof on -pprof and starts the CPU profile
// of -cpuprofile, which done stops and writes.
func startProfiling(cfg config, stderr io.Writer, done *cleanup) error {
	if cfg.PprofAddr != "" {
		go func() {
			err := http.ListenAndServe(cfg.PprofAddr, nil)
			fmt.Fprintf(stderr, "sharesbench: -pprof %s: %v\n", cfg.PprofAddr, err)
		}()
	}
	if cfg.CPUProfile == "" {
		return nil
	}
	f, err := os.Create(cfg.CPUProfile)
	if err != nil {
		return fmt.Errorf("-cpuprofile: %w", err)
	}
	done.add(func() { _ = f.Close() })
	if err := pprof.StartCPUProfile(f); err != nil {
		return fmt.Errorf("-cpuprofile: %w", err)
	}
	done.add(pprof.StopCPUProfile)
	return nil
}

// writeHeapProfile writes the allocation profile of -memprofile.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("-memprofile: %w", err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("-memprofile: %w", err)
	}
	return nil
}
