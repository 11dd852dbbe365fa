package mapping

import (
	"fmt"
	"strings"

	"github.com/wyehq/wye/cluster"
)

// Flavor is the search engine family a mapping variant targets. Its values are the file
// name stems of variant files (opensearch.json, elasticsearch-7.json).
type Flavor string

const (
	Elasticsearch Flavor = "elasticsearch"
	OpenSearch    Flavor = "opensearch"
)

// Engine is what a cluster runs: the flavor and the version that decide which mapping
// variant applies and which field types exist.
type Engine struct {
	Flavor       Flavor
	Major, Minor int
}

func (e Engine) String() string {
	name := string(e.Flavor)
	switch e.Flavor {
	case Elasticsearch:
		name = "Elasticsearch"
	case OpenSearch:
		name = "OpenSearch"
	}
	return fmt.Sprintf("%s %d.%d", name, e.Major, e.Minor)
}

func (e Engine) atLeast(major, minor int) bool {
	return e.Major > major || (e.Major == major && e.Minor >= minor)
}

// knownEngines are the majors wye supports (see cluster.Info.supported); Load checks every
// mapping as it would resolve for each of them.
var knownEngines = []Engine{
	{Elasticsearch, 7, 14}, {Elasticsearch, 8, 0},
	{OpenSearch, 2, 0}, {OpenSearch, 3, 0},
}

// since is the first version of a flavor that has a field type; never means none.
type since struct{ major, minor int }

var never = since{-1, 0}

// fieldTypes lists the field types each flavor accepts, with the first version that has
// them. It is deliberately small and explicit: a type missing here is refused at load, with
// the file and JSON path, before any cluster sees it. Types that need a module or plugin
// (mapper-extras: scaled_float, token_count, rank_feature, search_as_you_type; x-pack:
// flattened, dense_vector, wildcard, ...; OpenSearch k-NN: knn_vector) are listed as the
// engine's full distribution has them; a minimal build without the module answers 400 at
// create, and apply reports that answer.
var fieldTypes = map[string]struct{ es, os since }{
	// Core types, everywhere.
	"text": {since{7, 0}, since{1, 0}}, "keyword": {since{7, 0}, since{1, 0}},
	"long": {since{7, 0}, since{1, 0}}, "integer": {since{7, 0}, since{1, 0}},
	"short": {since{7, 0}, since{1, 0}}, "byte": {since{7, 0}, since{1, 0}},
	"double": {since{7, 0}, since{1, 0}}, "float": {since{7, 0}, since{1, 0}},
	"half_float": {since{7, 0}, since{1, 0}}, "boolean": {since{7, 0}, since{1, 0}},
	"date": {since{7, 0}, since{1, 0}}, "date_nanos": {since{7, 0}, since{1, 0}},
	"binary": {since{7, 0}, since{1, 0}}, "ip": {since{7, 0}, since{1, 0}},
	"object": {since{7, 0}, since{1, 0}}, "nested": {since{7, 0}, since{1, 0}},
	"alias": {since{7, 0}, since{1, 0}}, "geo_point": {since{7, 0}, since{1, 0}},
	"geo_shape": {since{7, 0}, since{1, 0}}, "completion": {since{7, 0}, since{1, 0}},
	"join": {since{7, 0}, since{1, 0}}, "percolator": {since{7, 0}, since{1, 0}},
	"integer_range": {since{7, 0}, since{1, 0}}, "long_range": {since{7, 0}, since{1, 0}},
	"float_range": {since{7, 0}, since{1, 0}}, "double_range": {since{7, 0}, since{1, 0}},
	"date_range": {since{7, 0}, since{1, 0}}, "ip_range": {since{7, 0}, since{1, 0}},
	// mapper-extras module.
	"scaled_float": {since{7, 0}, since{1, 0}}, "token_count": {since{7, 0}, since{1, 0}},
	"rank_feature": {since{7, 0}, since{1, 0}}, "rank_features": {since{7, 0}, since{1, 0}},
	"search_as_you_type": {since{7, 2}, since{1, 0}},
	// Where the engines part ways.
	"flattened":        {since{7, 3}, never},         // OpenSearch has flat_object instead
	"flat_object":      {never, since{2, 7}},         // Elasticsearch has flattened instead
	"match_only_text":  {since{7, 14}, since{2, 12}}, //
	"wildcard":         {since{7, 9}, since{2, 15}},  //
	"constant_keyword": {since{7, 7}, since{2, 14}},  //
	"unsigned_long":    {since{7, 10}, since{2, 8}},  //
	"version":          {since{7, 10}, never},        //
	"histogram":        {since{7, 6}, never},         //
	"dense_vector":     {since{7, 3}, never},         // OpenSearch has knn_vector (k-NN plugin)
	"sparse_vector":    {since{8, 0}, never},         // removed in 7.x, back in 8.0
	"semantic_text":    {since{8, 15}, never},        //
	"knn_vector":       {never, since{1, 0}},         // Elasticsearch has dense_vector
	"xy_point":         {never, since{2, 0}},         //
	"point":            {since{7, 0}, never},         // OpenSearch has xy_point
}

// typeSupport says whether e accepts a field type, and if not, a hint for the message.
func typeSupport(typ string, e Engine) (bool, string) {
	s, ok := fieldTypes[typ]
	if !ok {
		return false, fmt.Sprintf("unknown field type %q (known: see fieldTypes in mapping/engine.go)", typ)
	}
	v := s.es
	other, otherName := s.os, "OpenSearch"
	if e.Flavor == OpenSearch {
		v, other, otherName = s.os, s.es, "Elasticsearch"
	}
	if v != never && e.atLeast(v.major, v.minor) {
		return true, ""
	}
	if v == never {
		msg := fmt.Sprintf("field type %q does not exist in %s", typ, e.flavorName())
		if other != never {
			msg += " (" + otherName + " only)"
		}
		return false, msg + "; put the field in a per-flavor variant file"
	}
	return false, fmt.Sprintf("field type %q needs %s %d.%d or later, the cluster runs %s",
		typ, e.flavorName(), v.major, v.minor, e)
}

func (e Engine) flavorName() string {
	s, _, _ := strings.Cut(e.String(), " ")
	return s
}

// EngineOf is the engine a cluster client detected.
func EngineOf(info cluster.Info) Engine {
	e := Engine{Flavor: Elasticsearch, Major: info.Version.Major, Minor: info.Version.Minor}
	if info.Flavor == cluster.OpenSearch {
		e.Flavor = OpenSearch
	}
	return e
}
