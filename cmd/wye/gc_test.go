package main

import (
	"math"
	"os"
	"runtime"
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

// `wye run` must take one P by default and yield to GOMAXPROCS from the environment.
func TestRunTakesOneProcUnlessGOMAXPROCSIsSet(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	t.Setenv("GOMAXPROCS", "3")
	runtime.GOMAXPROCS(3)
	setRunProcs()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("with GOMAXPROCS=3 set, wye run took %d procs", got)
	}
	os.Unsetenv("GOMAXPROCS") // t.Setenv restores it afterwards
	setRunProcs()
	if got := runtime.GOMAXPROCS(0); got != DefaultRunProcs {
		t.Errorf("without GOMAXPROCS, wye run took %d procs, want %d", got, DefaultRunProcs)
	}
}
