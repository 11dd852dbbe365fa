package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"reflect"
	"strconv"
	"strings"
)

// redacted is what every printing and encoding path shows for a non-empty Secret.
const redacted = "***"

// Secret is a resolved credential (password, API key, token). Every way of printing or
// encoding it (fmt verbs, %#v, slog, JSON, YAML, text) shows "***", or "" when empty, so a
// config dump or a log line cannot leak it. Reveal returns the value to the code that needs it.
//
// The value sits behind a pointer so that even reflection-based printing of a struct holding a
// Secret in an unexported field shows an address, not the text.
type Secret struct{ v *string }

// NewSecret wraps s.
func NewSecret(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{v: &s}
}

// Reveal returns the secret value. Call it only where the value is handed to a client library.
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// IsZero reports whether the secret is empty; yaml's omitempty uses it.
func (s Secret) IsZero() bool { return s.v == nil || *s.v == "" }

func (s Secret) String() string {
	if s.IsZero() {
		return ""
	}
	return redacted
}

func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// Format covers every verb, including %x and %q, which would otherwise bypass String.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' || (verb == 'v' && f.Flag('#')) {
		fmt.Fprint(f, strconv.Quote(s.String()))
		return
	}
	fmt.Fprint(f, s.String())
}

func (s Secret) LogValue() slog.Value             { return slog.StringValue(s.String()) }
func (s Secret) MarshalText() ([]byte, error)     { return []byte(s.String()), nil }
func (s Secret) MarshalJSON() ([]byte, error)     { return []byte(strconv.Quote(s.String())), nil }
func (s Secret) MarshalYAML() (any, error)        { return s.String(), nil }
func (s Secret) configured(env, file string) bool { return !s.IsZero() || env != "" || file != "" }

var (
	_ fmt.Stringer   = Secret{}
	_ fmt.GoStringer = Secret{}
	_ fmt.Formatter  = Secret{}
	_ slog.LogValuer = Secret{}
)

// resolveSecrets fills every Secret field X from the key the user chose: the literal X, the
// environment variable named by X_env, or the file named by X_file (one trailing newline
// trimmed). It reports a missing variable, an unreadable or empty file, and more than one
// source for the same secret. The secrets of the sections need leaves out stay empty and
// unchecked: a command that does not connect there needs no password for them.
func resolveSecrets(c *Config, lookupEnv func(string) (string, bool), need Need) Errors {
	var faults Errors
	walkStructs("", reflect.ValueOf(c).Elem(), func(path string, v reflect.Value) {
		if !need.resolves(path) {
			return
		}
		t := v.Type()
		for i := range t.NumField() {
			if t.Field(i).Type != secretType {
				continue
			}
			name := keyOf(t.Field(i))
			lit := v.Field(i)
			envName := stringField(v, name+"_env")
			file := stringField(v, name+"_file")
			var set []string
			for _, s := range []struct{ key, val string }{
				{name, lit.Interface().(Secret).Reveal()}, {name + "_env", envName}, {name + "_file", file},
			} {
				if s.val != "" {
					set = append(set, s.key)
				}
			}
			if len(set) > 1 {
				faults.add(join(path, name), "",
					"set at most one of %s, %s_env and %s_file (got %s)", name, name, name, strings.Join(set, " and "))
				continue
			}
			switch {
			case envName != "":
				val, ok := lookupEnv(envName)
				switch {
				case !ok:
					faults.add(join(path, name+"_env"), envName, "environment variable is not set")
				case val == "":
					faults.add(join(path, name+"_env"), envName, "environment variable is empty")
				default:
					lit.Set(reflect.ValueOf(NewSecret(val)))
				}
			case file != "":
				b, err := os.ReadFile(file)
				var pe *fs.PathError
				if errors.As(err, &pe) {
					err = pe.Err // the path is already in the message
				}
				val := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
				switch {
				case err != nil:
					faults.add(join(path, name+"_file"), file, "cannot read: %v", err)
				case val == "":
					faults.add(join(path, name+"_file"), file, "file is empty")
				default:
					lit.Set(reflect.ValueOf(NewSecret(val)))
				}
			}
		}
	})
	return faults
}

// Need names the sections of the configuration whose secrets Load resolves: the servers a
// command connects to. The zero value is every section (NeedAll). Validation does not
// depend on it: every section is validated, secrets by which of their keys are set.
type Need uint8

const (
	NeedSource   Need = 1 << iota // source.password*
	NeedControl                   // control.password*
	NeedAMQP                      // amqp.password*
	NeedClusters                  // clusters[].auth.*
	// NeedNoSecret resolves none: a command that reads the file only (wye entity list).
	NeedNoSecret

	NeedAll = NeedSource | NeedControl | NeedAMQP | NeedClusters
)

// resolves reports whether the secrets of the struct at path (source.tls, clusters[2].auth)
// are resolved.
func (n Need) resolves(path string) bool {
	if n == 0 {
		n = NeedAll
	}
	section, _, _ := strings.Cut(path, ".")
	section, _, _ = strings.Cut(section, "[")
	switch section {
	case "source":
		return n&NeedSource != 0
	case "control":
		return n&NeedControl != 0
	case "amqp":
		return n&NeedAMQP != 0
	case "clusters":
		return n&NeedClusters != 0
	}
	return n&NeedAll == NeedAll // a secret elsewhere: only when every section is needed
}

// stringField returns the string field tagged key in struct v, or "".
func stringField(v reflect.Value, key string) string {
	t := v.Type()
	for i := range t.NumField() {
		if keyOf(t.Field(i)) == key && t.Field(i).Type.Kind() == reflect.String {
			return v.Field(i).String()
		}
	}
	return ""
}

// walkStructs calls fn for every struct reachable from v (v included), through struct fields
// and lists, with its path.
func walkStructs(path string, v reflect.Value, fn func(path string, v reflect.Value)) {
	switch {
	case v.Kind() == reflect.Struct && v.Type() != secretType:
		fn(path, v)
		for i := range v.NumField() {
			walkStructs(join(path, keyOf(v.Type().Field(i))), v.Field(i), fn)
		}
	case v.Kind() == reflect.Slice:
		for i := range v.Len() {
			walkStructs(index(path, i), v.Index(i), fn)
		}
	}
}
