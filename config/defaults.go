package config

import (
	"reflect"
	"slices"

	"github.com/wyehq/wye/broker"
	"github.com/wyehq/wye/cdc"
	"github.com/wyehq/wye/cdc/publisher"
	"github.com/wyehq/wye/cluster"
	"github.com/wyehq/wye/control"
	"github.com/wyehq/wye/indexer"
	"github.com/wyehq/wye/indexer/consumer"
	"github.com/wyehq/wye/indexer/es"
	"github.com/wyehq/wye/mapping"
	"github.com/wyehq/wye/nightly"
	"github.com/wyehq/wye/promote"
)

// DefaultNightlyReport is where `wye nightly` writes its report unless told otherwise.
const DefaultNightlyReport = "wye-nightly.json"

// Defaults are assembled here and nowhere else; docs/configuration.md lists the same values.
// A tuning knob's default is the exported constant of the component that owns it (cdc,
// publisher, broker, consumer, indexer, control, es, cluster), so a component built without
// the configuration and one built from it behave alike (docs/architecture.md, Defaults);
// defaults_test.go holds them equal. Only the values no component owns are written out here.
//
// A key has a default only when one value is right for nearly every deployment. Keys that
// name a site (hosts, users, server_id, cluster names and URLs) have none and are required.
//
// Decoding starts from Default() and from defaultCluster() for each clusters[i], and
// overwrites only the keys the file, the environment or a flag sets. So an explicit zero
// ("request: 0s") stays zero and fails validation instead of silently becoming the default.

// Default returns the configuration that an empty file yields (which does not validate:
// source, control, amqp.url and clusters must be filled in).
func Default() Config {
	return Config{
		Source: Source{
			Port: 3306,
		},
		Control: Control{
			Port:     3306,
			Database: "wye",
		},
		AMQP: AMQP{
			Exchange:      broker.DefaultExchange,
			Queue:         broker.DefaultQueue,
			Parked:        broker.DefaultParkedQueue,
			DeliveryLimit: broker.DefaultDeliveryLimit,
			Prefetch:      consumer.DefaultPrefetch,
			// Batches of JSON changes repeat their keys and positions: they shrink many times over,
			// and the broker writes and replicates that much less (docs/cdc.md, Message schema 2).
			Compression: "zstd",
		},
		CDC: CDC{
			Name:               cdc.DefaultName,
			Window:             publisher.DefaultWindow,
			CheckpointInterval: cdc.DefaultCheckpointInterval,
			BatchChanges:       cdc.DefaultBatchChanges,
			BatchBytes:         cdc.DefaultBatchBytes,
			Linger:             cdc.DefaultLinger,
			UpdateImages:       cdc.DefaultUpdateImages,
		},
		Indexer: Indexer{
			RetryDelays:       slices.Clone(consumer.DefaultRetryDelays),
			MaxAttempts:       indexer.DefaultMaxAttempts,
			BatchSize:         consumer.DefaultBatchSize,
			BacklogBatchSize:  consumer.DefaultBacklogBatchSize,
			BatchBytes:        consumer.DefaultBatchBytes,
			BatchWait:         consumer.DefaultBatchWait,
			Consumers:         consumer.DefaultConsumers,
			InFlight:          consumer.DefaultInFlight,
			SlaveBacklog:      indexer.DefaultSlaveBacklog,
			SlaveInFlight:     indexer.DefaultSlaveInFlight,
			SlaveBacklogBytes: indexer.DefaultSlaveBacklogBytes,
			ChunkDocs:         indexer.DefaultChunkDocs,
			ChunkBytes:        indexer.DefaultChunkBytes,
			BulkBytes:         indexer.DefaultBulkBytes,
			RolesPoll:         control.DefaultRolesPoll,
			StopTimeout:       indexer.DefaultStopTimeout,
			IndexTargets:      IndexTargetsMapping,
			IndicesTTL:        es.DefaultIndicesTTL,
		},
		Mapping: Mapping{
			Dir:          mapping.DefaultDir,
			VersionField: indexer.DefaultVersionField,
		},
		Nightly: Nightly{
			ChunkRows:      nightly.DefaultChunkRows,
			ScanPage:       nightly.DefaultScanPage,
			MaxDeleteShare: nightly.DefaultMaxDeleteShare,
			Report:         DefaultNightlyReport,
		},
		Promote: Promote{
			MinInterval: promote.DefaultMinInterval,
			MaxLag:      promote.DefaultMaxLag,
			Sample:      promote.DefaultSample,
			AutoAfter:   promote.DefaultAutoAfter,
			AutoEvery:   promote.DefaultAutoEvery,
		},
		Metrics: Metrics{Listen: "127.0.0.1:9464"},
		Log:     Log{Level: "info", Format: "text"},
	}
}

// defaultCluster is the starting value of each clusters[i].
func defaultCluster() Cluster {
	return Cluster{
		Timeouts: Timeouts{
			Request: cluster.DefaultRequestTimeout,
			Bulk:    cluster.DefaultBulkTimeout,
		},
	}
}

// defaultEntity is the starting value of each entities[i].
func defaultEntity() Entity { return Entity{VersionField: indexer.DefaultVersionField} }

// defaultElem returns the starting value of one element of a list of type t.
func defaultElem(t reflect.Type) reflect.Value {
	switch t {
	case reflect.TypeFor[Cluster]():
		return reflect.ValueOf(defaultCluster())
	case reflect.TypeFor[Entity]():
		return reflect.ValueOf(defaultEntity())
	}
	return reflect.New(t).Elem()
}
