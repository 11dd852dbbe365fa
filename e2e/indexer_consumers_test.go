package e2e

import (
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wyehq/wye/indexer/consumer"
)

// TestOneIndexerProcessRunsItsConsumersAndConverges prevents an indexer process from taking
// one batch at a time when indexer.consumers asks for more (docs/indexer.md, "Consumers"):
// one `wye indexer` with the default must hold consumer.DefaultConsumers consumers on the
// change queue, and a random catalog workload through it alone must converge on every
// cluster: its consumers share the pipeline, the fan-out and the writers, as replicas in one
// process.
func TestOneIndexerProcessRunsItsConsumersAndConverges(t *testing.T) {
	if consumer.DefaultConsumers < 2 {
		t.Fatalf("consumer.DefaultConsumers is %d: this test needs the default to run several", consumer.DefaultConsumers)
	}
	r := newIndexerRig(t)
	r.start()
	conn, err := amqp.Dial(amqpURL)
	must(t, err)
	defer conn.Close()
	eventually(t, 30*time.Second, func() error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		q, err := ch.QueueDeclarePassive(r.queue, true, false, false, false, nil)
		if err != nil {
			return err
		}
		if q.Consumers != consumer.DefaultConsumers {
			return fmt.Errorf("queue %s has %d consumers, want %d from one process", r.queue, q.Consumers, consumer.DefaultConsumers)
		}
		return nil
	})
	workloadConverges(t, r, 1500, 3*time.Minute)
}
