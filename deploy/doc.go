// Package deploy holds wye's deployment material, and tests it without a cluster: Kubernetes
// manifests (kubernetes/: kustomize base, dev and production overlays, components), the alerts
// (prometheus/rules.yaml, its promtool tests, the PrometheusRule made from it) and the Grafana
// dashboard (grafana/wye.json). In: the wye binary and the metric constructors of cdc, indexer,
// nightly and control. Out: test verdicts. See docs/deploy.md.
package deploy
