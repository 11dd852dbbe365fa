package broker

import (
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The broker topology's defaults, shared by the binlog reader and the indexer (config's
// amqp.* defaults are the same names: a test in cmd/wye holds them equal).
const (
	DefaultExchange      = "wye.changes" // topic exchange of change messages
	DefaultQueue         = "wye.index"   // the change queue the indexer consumes
	DefaultParkedQueue   = "wye.parked"  // messages wye cannot deliver or write
	DefaultDeliveryLimit = 10            // x-delivery-limit of the change queue
)

// ChangeQueueArgs are the arguments of the change queue, the contract between the binlog
// reader and the indexer (both declare it; arguments cannot change once it exists). A
// message redelivered more than deliveryLimit times (crash loops, consumer timeouts) is
// dead-lettered to parked, at least once, instead of being deleted: without a dead-letter
// target a quorum queue drops it.
func ChangeQueueArgs(deliveryLimit int, parked string) amqp.Table {
	return amqp.Table{
		"x-queue-type":              "quorum",
		"x-delivery-limit":          deliveryLimit,
		"x-overflow":                "reject-publish", // required by at-least-once dead-lettering
		"x-dead-letter-strategy":    "at-least-once",
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": parked,
	}
}

// ParkedQueueArgs are the arguments of the parked queue. Both sides declare it, so they
// must agree: a declare with other arguments fails with 406 PRECONDITION_FAILED.
func ParkedQueueArgs() amqp.Table { return amqp.Table{"x-queue-type": "quorum"} }

// RetryQueue names the retry tier of queue that holds messages for d: "wye.index.retry.5s".
// Whoever declares, inspects or drains the tiers derives their names here.
func RetryQueue(queue string, d time.Duration) string { return queue + ".retry." + d.String() }

// RetryQueueArgs are the arguments of RetryQueue(queue, d): the tier holds a message for its
// TTL d, then dead-letters it through the default exchange straight back into queue.
func RetryQueueArgs(queue string, d time.Duration) amqp.Table {
	return amqp.Table{
		"x-queue-type": "quorum", "x-message-ttl": d.Milliseconds(),
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue,
		"x-overflow": "reject-publish", "x-dead-letter-strategy": "at-least-once",
	}
}

// DeclareExchange opens a channel on conn and declares the change exchange on it (a durable
// topic exchange, as both sides declare it). The caller closes the channel.
func DeclareExchange(conn *amqp.Connection, exchange string) (*amqp.Channel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return nil, fmt.Errorf("declare exchange %s: %w", exchange, err)
	}
	return ch, nil
}
