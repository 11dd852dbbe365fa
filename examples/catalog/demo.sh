#!/usr/bin/env bash
# The first demo: brings the local stack up, creates the sample media catalog, runs
# `wye run` (cdc + indexer) and a workload generator, and prints a live summary: changes,
# documents per cluster, events acknowledged, parked, lag. Ctrl-C stops everything.
#
# Every name can be overridden so the demo can run beside other users of the same stack:
#   WYE_DEMO_DB (catalog) WYE_DEMO_INDEX (programs) WYE_DEMO_QUEUE (wye.index)
#   WYE_DEMO_EXCHANGE (wye.changes) WYE_DEMO_METRICS (127.0.0.1:9464) WYE_DEMO_DURATION (60s)
#   WYE_DEMO_SETTLE (0: print the summary until Ctrl-C)
#
# Integration point: the demo creates its index from examples/catalog/index.json itself;
# once `wye mapping apply` ships the catalog mappings it should call that instead.
set -euo pipefail
cd "$(dirname "$0")/../.."

DB="${WYE_DEMO_DB:-catalog}"
INDEX="${WYE_DEMO_INDEX:-programs}"
QUEUE="${WYE_DEMO_QUEUE:-wye.index}"
EXCHANGE="${WYE_DEMO_EXCHANGE:-wye.changes}"
METRICS="${WYE_DEMO_METRICS:-127.0.0.1:9464}"
DURATION="${WYE_DEMO_DURATION:-60s}"
declare -A URL=([es7]=http://127.0.0.1:9217 [es8]=http://127.0.0.1:9218 [os2]=http://127.0.0.1:9219)

bash e2e/stack/stack.sh up
go build -o bin/wye ./cmd/wye

echo "== catalog database $DB"
go run ./examples/catalog/workload -dsn "wye_app:wye-app@tcp(127.0.0.1:3306)/$DB" -create examples/catalog/schema.sql

echo "== index $INDEX on es7 (master), es8 and os2 (slaves)"
for c in es7 es8 os2; do
  curl -fsS -o /dev/null -X DELETE "${URL[$c]}/$INDEX" 2>/dev/null || true
  curl -fsS -o /dev/null -X PUT "${URL[$c]}/$INDEX" -H 'Content-Type: application/json' --data-binary @examples/catalog/index.json
done

CFG="$(mktemp -t wye-demo.XXXXXX.yaml)"
sed -e "s/catalog\./$DB./g" \
    -e "s/^    index: programs$/    index: $INDEX/" \
    -e "s/^  exchange: wye.changes$/  exchange: $EXCHANGE/" \
    -e "s/^  queue: wye.index$/  queue: $QUEUE/" \
    -e "s/^  listen: 127.0.0.1:9464 .*/  listen: $METRICS/" \
    wye.example.yaml > "$CFG"
export WYE_SOURCE_PASSWORD=wye-source WYE_CONTROL_PASSWORD=wye-control WYE_AMQP_PASSWORD=wye-amqp

echo "== wye run (cdc + indexer), metrics on http://$METRICS/metrics"
bin/wye run -c "$CFG" --name "demo-$DB" --log-level warn &
WYE=$!
trap 'kill $WYE 2>/dev/null; wait $WYE 2>/dev/null; rm -f "$CFG"' EXIT
for _ in $(seq 1 60); do
  curl -fsS -o /dev/null "http://$METRICS/readyz" 2>/dev/null && break
  sleep 0.5
done
sleep 2 # the reader starts at the current binlog position: let it get there first

echo "== workload for $DURATION (then the summary keeps going until Ctrl-C)"
go run ./examples/catalog/workload -dsn "wye_app:wye-app@tcp(127.0.0.1:3306)/$DB" -index "$INDEX" \
  -clusters "es7=${URL[es7]},es8=${URL[es8]},os2=${URL[os2]}" -metrics "http://$METRICS/metrics" \
  -duration "$DURATION" -settle "${WYE_DEMO_SETTLE:-0}"
