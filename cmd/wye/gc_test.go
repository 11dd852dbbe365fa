package main

import (
	"math"
	"os"
	"runtime/debug"
	"testing"
)

// The stream commands' GC defaults must yield to GOGC and GOMEMLIMIT set in the environment
// (an operator's choice, documented in docs/configuration.md), and apply when neither is.
func TestGCDefaultsYieldToGOGCAndGOMEMLIMITFromTheEnvironment(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	t.Setenv("GOGC", "100")
	t.Setenv("GOMEMLIMIT", "off")
	setGCDefaults()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set, the GC percent became %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("with GOMEMLIMIT set, the memory limit became %d", got)
	}
	os.Unsetenv("GOGC") // t.Setenv restores both afterwards
	os.Unsetenv("GOMEMLIMIT")
	setGCDefaults()
	if got := debug.SetGCPercent(100); got != DefaultGOGC {
		t.Errorf("without GOGC, the GC percent is %d, want %d", got, DefaultGOGC)
	}
	if got := debug.SetMemoryLimit(-1); got != DefaultMemoryLimit {
		t.Errorf("without GOMEMLIMIT, the memory limit is %d, want %d", got, DefaultMemoryLimit)
	}
}
