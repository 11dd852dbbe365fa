package main

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// keyAnnotation marks a flag that overrides a configuration key; its value is the key's path.
const keyAnnotation = "wye.config-key"

// bindKeys makes each flag of fs override a configuration key, given as pairs: flag name, key
// path. Such a flag overrides the key only when it is given on the command line, and then
// wins over the file and WYE_* variables (docs/configuration.md, "Where values come from");
// its default is only what --help shows, taken from config.Default(). The key is appended
// to the flag's help.
func bindKeys(fs *pflag.FlagSet, pairs ...string) {
	for i := 0; i+1 < len(pairs); i += 2 {
		name, key := pairs[i], pairs[i+1]
		f := fs.Lookup(name)
		if f == nil {
			panic("bindKeys: no flag --" + name) // the flag is defined just above: a programming error
		}
		if err := fs.SetAnnotation(name, keyAnnotation, []string{key}); err != nil {
			panic(err)
		}
		f.Usage += " (key " + key + ")"
	}
}

// flagOverrides returns key path -> value for every flag of cmd (its own and inherited) that
// is bound to a key and was given. A deprecated flag is applied before the others, so that
// the flag replacing it wins when both are given.
func flagOverrides(cmd *cobra.Command) map[string]string {
	var given []*pflag.Flag
	cmd.Flags().Visit(func(f *pflag.Flag) { given = append(given, f) })
	slices.SortStableFunc(given, func(a, b *pflag.Flag) int {
		switch {
		case a.Deprecated != "" && b.Deprecated == "":
			return -1
		case a.Deprecated == "" && b.Deprecated != "":
			return 1
		}
		return 0
	})
	over := map[string]string{}
	for _, f := range given {
		if key := f.Annotations[keyAnnotation]; len(key) == 1 {
			over[key[0]] = flagValue(f)
		}
	}
	return over
}

// flagValue is a flag's value as config.Options.Overrides takes it: a list comma-separated.
func flagValue(f *pflag.Flag) string {
	if s, ok := f.Value.(pflag.SliceValue); ok {
		return strings.Join(s.GetSlice(), ",")
	}
	return f.Value.String()
}
