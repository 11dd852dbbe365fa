// Package config loads wye's configuration.
// In: one YAML file, WYE_* environment overrides, flag overrides, and the env vars and files
// that secrets are read from. Out: a validated *Config, or Errors with one path-named line per fault.
// Owns: the schema, the defaults (defaults.go, from the components' exported constants), strict
// parsing, validation and Secret redaction.
package config
