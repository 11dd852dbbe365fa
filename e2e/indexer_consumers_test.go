package e2e

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestOneIndexerProcessRunsItsConsumersAndConverges prevents an indexer process from taking
// one batch at a time when indexer.consumers asks for more (docs/indexer.md, "Consumers"):
// one `wye indexer` with WYE_INDEXER_CONSUMERS=2 must hold two consumers on the change
// queue, and a random catalog workload through it alone must converge on every cluster: its
// consumers share the pipeline, the fan-out and the writers, as replicas in one process.
func TestOneIndexerProcessRunsItsConsumersAndConverges(t *testing.T) {
	const consumers = 2
	t.Setenv("WYE_INDEXER_CONSUMERS", strconv.Itoa(consumers)) // the indexer process inherits it
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
		if q.Consumers != consumers {
			return fmt.Errorf("queue %s has %d consumers, want %d from one process", r.queue, q.Consumers, consumers)
		}
		return nil
	})
	workloadConverges(t, r, 1500, 3*time.Minute)
}
