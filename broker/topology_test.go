package broker

import (
	"testing"
	"time"
)

// TestRetryTierNamesDoNotChange prevents orphaned retries: a retry tier holds messages for up
// to its TTL, so a tier renamed between two releases keeps messages in a queue nobody declares
// or drains any more, and the tiers of deployed brokers carry these names.
func TestRetryTierNamesDoNotChange(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Second: "wye.index.retry.1s", 5 * time.Second: "wye.index.retry.5s",
		30 * time.Second: "wye.index.retry.30s", 2 * time.Minute: "wye.index.retry.2m0s",
	} {
		if got := RetryQueue(DefaultQueue, d); got != want {
			t.Errorf("RetryQueue(%q, %v) = %q, want %q", DefaultQueue, d, got, want)
		}
		args := RetryQueueArgs(DefaultQueue, d)
		if args["x-dead-letter-routing-key"] != DefaultQueue || args["x-message-ttl"] != d.Milliseconds() {
			t.Errorf("tier %v does not dead-letter back to %s after its TTL: %v", d, DefaultQueue, args)
		}
	}
}
