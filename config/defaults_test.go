package config

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/wyehq/wye/broker"
	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/cdc/publisher"
	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/control"
	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/indexer/consumer"
	"github.com/wyehq/wye/indexer/es"
	"github.com/wyehq/wye/nightly"
	"github.com/wyehq/wye/promote"
)

// TestConfigDefaultsCannotDriftFromComponentDefaults holds every default that a component
// owns equal to that component's constant. Were one written out here instead, a component
// started without the configuration (a test, a tool) and one started from it would differ:
// another queue, another batch size. Adding a default that a component owns? Add its row.
func TestConfigDefaultsCannotDriftFromComponentDefaults(t *testing.T) {
	d := Default()
	cl := defaultCluster()
	for _, tc := range []struct {
		key       string
		got, want any
	}{
		{"amqp.exchange", d.AMQP.Exchange, broker.DefaultExchange},
		{"amqp.queue", d.AMQP.Queue, broker.DefaultQueue},
		{"amqp.parked", d.AMQP.Parked, broker.DefaultParkedQueue},
		{"amqp.delivery_limit", d.AMQP.DeliveryLimit, broker.DefaultDeliveryLimit},
		{"amqp.prefetch", d.AMQP.Prefetch, consumer.DefaultPrefetch},
		{"clusters[].timeouts.request", cl.Timeouts.Request, cluster.DefaultRequestTimeout},
		{"clusters[].timeouts.bulk", cl.Timeouts.Bulk, cluster.DefaultBulkTimeout},
		{"cdc.name", d.CDC.Name, cdc.DefaultName},
		{"cdc.window", d.CDC.Window, publisher.DefaultWindow},
		{"cdc.checkpoint_interval", d.CDC.CheckpointInterval, cdc.DefaultCheckpointInterval},
		{"cdc.batch_changes", d.CDC.BatchChanges, cdc.DefaultBatchChanges},
		{"cdc.batch_bytes", d.CDC.BatchBytes, cdc.DefaultBatchBytes},
		{"cdc.linger", d.CDC.Linger, cdc.DefaultLinger},
		{"cdc.update_images", d.CDC.UpdateImages, cdc.DefaultUpdateImages},
		{"indexer.retry_delays", d.Indexer.RetryDelays, consumer.DefaultRetryDelays},
		{"indexer.max_attempts", d.Indexer.MaxAttempts, indexer.DefaultMaxAttempts},
		{"indexer.batch_size", d.Indexer.BatchSize, consumer.DefaultBatchSize},
		{"indexer.backlog_batch_size", d.Indexer.BacklogBatchSize, consumer.DefaultBacklogBatchSize},
		{"indexer.batch_bytes", d.Indexer.BatchBytes, consumer.DefaultBatchBytes},
		{"indexer.batch_wait", d.Indexer.BatchWait, consumer.DefaultBatchWait},
		{"indexer.slave_backlog", d.Indexer.SlaveBacklog, indexer.DefaultSlaveBacklog},
		{"indexer.slave_in_flight", d.Indexer.SlaveInFlight, indexer.DefaultSlaveInFlight},
		{"indexer.roles_poll", d.Indexer.RolesPoll, control.DefaultRolesPoll},
		{"indexer.indices_ttl", d.Indexer.IndicesTTL, es.DefaultIndicesTTL},
		{"mapping.version_field", d.Mapping.VersionField, indexer.DefaultVersionField},
		{"nightly.chunk_rows", d.Nightly.ChunkRows, nightly.DefaultChunkRows},
		{"nightly.scan_page", d.Nightly.ScanPage, nightly.DefaultScanPage},
		{"nightly.max_delete_share", d.Nightly.MaxDeleteShare, nightly.DefaultMaxDeleteShare},
		{"promote.min_interval", d.Promote.MinInterval, promote.DefaultMinInterval},
		{"promote.max_lag", d.Promote.MaxLag, promote.DefaultMaxLag},
		{"promote.sample", d.Promote.Sample, promote.DefaultSample},
		{"promote.auto_after", d.Promote.AutoAfter, promote.DefaultAutoAfter},
		{"promote.auto_every", d.Promote.AutoEvery, promote.DefaultAutoEvery},
		{"entities[].version_field", defaultEntity().VersionField, indexer.DefaultVersionField},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s defaults to %v, its component's constant is %v", tc.key, tc.got, tc.want)
		}
	}
}

// TestDefaultRetryDelaysAreNotShared prevents a configuration from changing the consumer's
// package-level DefaultRetryDelays through the slice it was given.
func TestDefaultRetryDelaysAreNotShared(t *testing.T) {
	before := fmt.Sprint(consumer.DefaultRetryDelays)
	d := Default()
	d.Indexer.RetryDelays[0] = 0
	if got := fmt.Sprint(consumer.DefaultRetryDelays); got != before {
		t.Fatalf("consumer.DefaultRetryDelays changed to %s through Default()", got)
	}
}

// TestEmptyFileIsValidInEveryDefaultedSection prevents a default that fails its own
// validation: an empty file may only fault on the keys that have no default.
func TestEmptyFileIsValidInEveryDefaultedSection(t *testing.T) {
	d := Default()
	for _, f := range d.Validate().(Errors) {
		switch {
		case under(f.Path, "source"), under(f.Path, "control"), f.Path == "amqp.url", f.Path == "clusters":
		default:
			t.Errorf("the default fails validation: %v", f)
		}
	}
}
