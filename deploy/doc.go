// Package deploy holds wye's deployment material: Kubernetes manifests (Deployments for
// cdc and indexer, a CronJob for nightly) and a systemd unit for hosts without Kubernetes.
// In: the wye image and a config file. Out: running processes. The Go code here only
// tests that the manifests decode strictly.
//
// Status: not built yet.
package deploy
