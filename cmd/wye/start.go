package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wyehq/wye/broker"
	"github.com/wyehq/wye/config"
	"github.com/wyehq/wye/indexer"
	indexersql "github.com/wyehq/wye/indexer/sql"
)

// DefaultAuthTries bounds the connections at start that a server refuses for good (a wrong
// password, a user without grants: MySQL 1045, RabbitMQ 403): after that many, the command
// exits instead of retrying forever (docs/indexer.md, "Checks at start").
const DefaultAuthTries = 3

// startCheckTimeout bounds one try of a start check (a connection and its statements).
const startCheckTimeout = 10 * time.Second

// startCheck is what `wye indexer`, `wye cdc` and `wye run` check before they consume or
// publish anything: that the source and the broker accept the configured users and, with
// needs, that the source has every table and column the entities read. Every fault of the
// entities is written to faults, one per line, and makes a usageError (exit 2); warnings are
// logged. A refused login ends the start after DefaultAuthTries; a source that does not
// answer is waited for (nothing can be read without it), a broker that does not answer is
// left to the consumer's or publisher's reconnection.
func startCheck(ctx context.Context, cfg *config.Config, needs []indexer.Need, faults io.Writer, log *slog.Logger) error {
	if err := checkSourceNeeds(ctx, cfg, needs, faults, log); err != nil {
		return err
	}
	return checkBroker(ctx, cfg.AMQP, log)
}

// checkSourceNeeds is the source's part of startCheck (`wye nightly` has no broker to check).
func checkSourceNeeds(ctx context.Context, cfg *config.Config, needs []indexer.Need, faults io.Writer, log *slog.Logger) error {
	found, err := checkSource(ctx, cfg, needs, log)
	if err != nil {
		return err
	}
	return faultsError(found, faults, func(f indexer.Fault) { log.Warn("configuration warning", "warning", f.Error()) })
}

// faultsError writes every fault of found to out, one per line, hands each warning to warn,
// and returns a usageError that counts the faults (nil when there is none).
func faultsError(found []indexer.Fault, out io.Writer, warn func(indexer.Fault)) error {
	n := 0
	for _, f := range found {
		if f.Warning {
			warn(f)
			continue
		}
		fmt.Fprintln(out, f.Error())
		n++
	}
	if n == 0 {
		return nil
	}
	return usageError{fmt.Errorf("the source lacks what the entities read: %d %s", n, plural(n, "fault"))}
}

// checkSource runs the source check of needs (only the login when needs is empty), trying
// again while the source does not answer, and at most DefaultAuthTries times while it refuses.
func checkSource(ctx context.Context, cfg *config.Config, needs []indexer.Need, log *slog.Logger) ([]indexer.Fault, error) {
	src, err := indexersql.Open(cfg.Source.MySQLConfig(), 1)
	if err != nil {
		return nil, usageError{err}
	}
	defer src.Close()
	refused := 0
	for failures := 1; ; failures++ {
		tctx, cancel := context.WithTimeout(ctx, startCheckTimeout)
		found, err := src.Check(tctx, needs)
		cancel()
		if err == nil {
			return found, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if se, ok := errors.AsType[*indexer.SourceError](err); ok && se.Permanent {
			if refused++; refused >= DefaultAuthTries {
				return nil, fmt.Errorf("source %s refuses user %q after %d tries (check source.user and source.password, and the user's grants): %w",
					cfg.Source.Addr(), cfg.Source.User, refused, se.Err)
			}
		}
		wait := backoff(failures)
		log.Error("check the source at start; trying again", "source", cfg.Source.Addr(), "user", cfg.Source.User,
			"failures", failures, "retry_in", wait, "err", err)
		if !sleepCtx(ctx, wait) {
			return nil, ctx.Err()
		}
	}
}

// checkBroker logs in to the broker, at most DefaultAuthTries times while it refuses the
// credentials. Any other failure is left to the component's own reconnection.
func checkBroker(ctx context.Context, a config.AMQP, log *slog.Logger) error {
	user := ""
	if u, err := url.Parse(a.URL); err == nil && u.User != nil {
		user = u.User.Username()
	}
	for try := 1; ; try++ {
		conn, err := amqp.DialConfig(a.URLWithPassword(), amqp.Config{Dial: amqp.DefaultDial(startCheckTimeout)})
		if err == nil {
			return conn.Close()
		}
		be, _ := broker.Classify("dial", fmt.Errorf("dial broker: %w", err)).(*broker.Error)
		if !be.Permanent {
			log.Warn("broker unreachable at start; connecting in the background", "broker", a.Host(), "err", err)
			return nil
		}
		if try >= DefaultAuthTries {
			return fmt.Errorf("broker %s refuses user %q after %d tries (check amqp.url and the amqp password, and the user's permissions on the vhost): %w",
				a.Host(), user, try, err)
		}
		wait := backoff(try)
		log.Error("broker refuses the login at start; trying again", "broker", a.Host(), "user", user, "tries", try, "retry_in", wait, "err", err)
		if !sleepCtx(ctx, wait) {
			return ctx.Err()
		}
	}
}

// cleanStop is err, or nil when ctx is done: a stop (SIGTERM) while the start check waits is a
// clean stop, not a failure.
func cleanStop(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// backoff is the wait after the nth consecutive failure: 1 s, doubling, at most 30 s.
func backoff(n int) time.Duration { return min(time.Second<<min(n-1, 5), 30*time.Second) }

// sleepCtx waits d or until ctx is done; false when ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
