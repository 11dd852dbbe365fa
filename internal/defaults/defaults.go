// Package defaults applies a component's exported defaults in its constructor.
// In: an option's value and the component's default. Out: the value to use.
// Owns: the rule that an unset (zero) or nonsensical (negative) bound takes the default.
package defaults

// Positive returns v, or def when v is not positive: a size, count or interval left at zero
// (or set below it) takes the component's default.
func Positive[T ~int | ~int32 | ~int64 | ~float64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
