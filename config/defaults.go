package config

import (
	"reflect"
	"time"
)

// Defaults live here and nowhere else; docs/configuration.md lists the same values.
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
			Exchange: "wye.changes",
			Queue:    "wye.index",
			Parked:   "wye.parked",
			Prefetch: 512,
			// Batches of JSON changes repeat their keys and positions: they shrink many times over,
			// and the broker writes and replicates that much less (docs/cdc.md, Message schema 2).
			Compression: "zstd",
		},
		Metrics: Metrics{Listen: "127.0.0.1:9464"},
		Log:     Log{Level: "info", Format: "text"},
	}
}

// defaultCluster is the starting value of each clusters[i].
func defaultCluster() Cluster {
	return Cluster{
		Timeouts: Timeouts{
			Request: 30 * time.Second,
			Bulk:    60 * time.Second, // a bulk request carries up to thousands of documents
		},
	}
}

// DefaultVersionField is the document field carrying the change version.
const DefaultVersionField = "wye_version"

// defaultEntity is the starting value of each entities[i].
func defaultEntity() Entity { return Entity{VersionField: DefaultVersionField} }

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
