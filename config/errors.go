package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// FieldError is one configuration fault, located by its key path.
type FieldError struct {
	Path  string // "clusters[1].urls[0]"; "" for the whole file
	Value string // the offending value, if there is one worth showing; never a secret
	Msg   string // lower case, no trailing period
}

// Error reads `path: "value": message`, or `path: message` when there is no value.
func (e FieldError) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	if e.Value != "" {
		b.WriteString(strconv.Quote(e.Value) + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every fault found in one configuration, in the order of the schema (source
// before control before amqp ..., clusters[0] before clusters[1]). Error() puts one fault per
// line.
type Errors []FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es *Errors) add(path, value, format string, args ...any) {
	*es = append(*es, FieldError{Path: path, Value: value, Msg: fmt.Sprintf(format, args...)})
}

func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// sort orders faults as their keys appear in the schema; unknown keys go after the known
// keys of their mapping. The sort is stable, so faults at one path keep their order.
func (es Errors) sort() {
	slices.SortStableFunc(es, func(a, b FieldError) int {
		return slices.Compare(schemaPosition(a.Path), schemaPosition(b.Path))
	})
}

// schemaPosition turns "clusters[1].auth.password" into the field and list indexes along it.
func schemaPosition(path string) []int {
	var pos []int
	t := reflect.TypeFor[Config]()
	for seg := range strings.SplitSeq(path, ".") {
		name, rest, _ := strings.Cut(seg, "[")
		if t != nil && t.Kind() == reflect.Struct {
			if i, ok := fieldByKey(t, name); ok {
				pos = append(pos, i)
				t = t.Field(i).Type
			} else {
				pos = append(pos, t.NumField())
				t = nil
			}
		}
		for rest != "" {
			n, after, _ := strings.Cut(rest, "]")
			i, _ := strconv.Atoi(n)
			pos = append(pos, i)
			if t != nil && t.Kind() == reflect.Slice {
				t = t.Elem()
			}
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return pos
}
