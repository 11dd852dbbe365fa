// Command wye keeps several Elasticsearch/OpenSearch clusters in step with a MySQL/MariaDB
// database. main builds the configuration, wires components, handles signals and exit codes;
// each subcommand lives in its own file.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/wyehq/wye/config"
)

// Exit codes. Scripts and Kubernetes probes rely on them.
const (
	exitOK      = 0
	exitFailure = 1 // runtime failure: a server refused, a check found drift, ...
	exitUsage   = 2 // bad flags, bad or invalid configuration
)

// usageError marks an error as the caller's fault (flags, config): exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// globalFlags are shared by every subcommand.
type globalFlags struct {
	configFile string
	logLevel   string
}

func newRootCmd() (*cobra.Command, *globalFlags) {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "wye",
		Short:         "Keep several Elasticsearch/OpenSearch clusters in step with MySQL/MariaDB",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&g.configFile, "config", "c", envOr("WYE_CONFIG", "wye.yaml"),
		"configuration file (env WYE_CONFIG)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", envOr("WYE_LOG_LEVEL", config.Default().Log.Level),
		"log level: debug, info, warn, error (env WYE_LOG_LEVEL)")
	bindKeys(root.PersistentFlags(), "log-level", "log.level")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
			return usageError{fmt.Errorf("--log-level: %q: want debug, info, warn or error", g.logLevel)}
		}
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
		if streaming[cmd.Name()] {
			setGCDefaults()
		}
		if cmd.Name() == "run" {
			setRunProcs()
		}
		return nil
	}
	for _, add := range subcommands {
		root.AddCommand(add(g))
	}
	return root, g
}

// GC defaults of the long-running stream commands (streaming), unless the environment sets
// GOGC or GOMEMLIMIT itself (the Go runtime's variables, which then apply as given).
// DefaultGOGC lets the heap grow to three times the live data between collections instead of
// twice: about half the collector's CPU per change at the stream's allocation rates.
// DefaultMemoryLimit keeps the collector's soft limit under the 100 MB that `wye run` is
// sized for (README, "Limits"): near it the collector runs more often, whatever GOGC says.
const (
	DefaultGOGC        = 200
	DefaultMemoryLimit = 80 << 20
)

// streaming are the commands that run the stream (and its GC defaults).
var streaming = map[string]bool{"run": true, "indexer": true, "cdc": true}

func setGCDefaults() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(DefaultGOGC)
	}
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok {
		debug.SetMemoryLimit(DefaultMemoryLimit)
	}
}

// DefaultRunProcs is GOMAXPROCS for `wye run` unless the environment sets GOMAXPROCS. Its
// stages (binlog reader, batcher, broker, indexer, HTTP) hand work to one another many times
// per batch; with more Ps the Go scheduler spends CPU looking for work between the hand-offs,
// and one core carries far more changes than the engines take (docs/configuration.md,
// "GOMAXPROCS"). `wye cdc` and `wye indexer`, deployed apart, keep Go's default.
const DefaultRunProcs = 1

func setRunProcs() {
	if _, ok := os.LookupEnv("GOMAXPROCS"); !ok {
		runtime.GOMAXPROCS(DefaultRunProcs)
	}
}

// subcommands is filled by the init() of each subcommand's file.
var subcommands []func(*globalFlags) *cobra.Command

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root, _ := newRootCmd()
	err := root.ExecuteContext(ctx)
	stop()
	os.Exit(exitCode(err))
}

// exitCode prints err once and maps it to the process exit code.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "wye:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	var ce interface{ ExitCode() int }
	if errors.As(err, &ce) {
		return ce.ExitCode()
	}
	return exitFailure
}
