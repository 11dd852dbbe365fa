package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wyehq/wye/broker"
)

// TestChangeQueueParksAMessagePastItsDeliveryLimit prevents silent loss: a quorum queue
// with x-delivery-limit and no dead-letter target deletes a message redelivered too often
// (crash loops, consumer timeouts). The change queue's arguments must park it instead.
func TestChangeQueueParksAMessagePastItsDeliveryLimit(t *testing.T) {
	requireReachable(t, "RabbitMQ", amqpAddr(t))
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatalf("dial amqp: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	defer ch.Close()

	id := time.Now().UnixNano()
	queue, parked := fmt.Sprintf("wye.e2e.limit.%d", id), fmt.Sprintf("wye.e2e.limit.%d.parked", id)
	if _, err := ch.QueueDeclare(parked, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatalf("declare parked: %v", err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, broker.ChangeQueueArgs(1, parked)); err != nil {
		t.Fatalf("declare change queue with wye's arguments: %v", err)
	}
	t.Cleanup(func() {
		ch.QueueDelete(queue, false, false, false)
		ch.QueueDelete(parked, false, false, false)
	})
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm mode: %v", err)
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", queue, true, false,
		amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(`{"schema":1}`)})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if ok, err := dc.WaitContext(t.Context()); !ok || err != nil {
		t.Fatalf("publish not confirmed: %v %v", ok, err)
	}

	// Reject it with requeue until the broker stops handing it out; it must then be parked.
	eventually(t, 20*time.Second, func() error {
		if d, ok, err := ch.Get(queue, false); err != nil {
			return err
		} else if ok {
			d.Nack(false, true)
			return fmt.Errorf("still in the change queue (delivery count %v)", d.Headers["x-delivery-count"])
		}
		d, ok, err := ch.Get(parked, true)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("not in %s yet", parked)
		}
		if string(d.Body) != `{"schema":1}` {
			t.Fatalf("parked body = %q", d.Body)
		}
		return nil
	})
}
