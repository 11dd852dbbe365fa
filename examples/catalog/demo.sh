#!/usr/bin/env bash
# The first demo: brings the local stack up, creates the sample media catalog and its index,
# runs `wye run` (cdc + indexer) and a workload generator, and prints a live summary: changes,
# documents per cluster, events acknowledged, parked, lag. Ctrl-C stops everything.
#
# Every name can be overridden so the demo can run beside other users of the same stack:
#   WYE_DEMO_DB (catalog) WYE_DEMO_INDEX (programs) WYE_DEMO_QUEUE (wye.index)
#   WYE_DEMO_EXCHANGE (wye.changes) WYE_DEMO_METRICS (127.0.0.1:9464) WYE_DEMO_DURATION (60s)
#   WYE_DEMO_SETTLE (0: print the summary until Ctrl-C)
#
# The index comes from the mapping files (mappings/programs/v1, docs/mapping.md): the demo
# deletes the previous run's index, `wye mapping apply` creates programs_v1 and the alias
# programs on every cluster, `wye mapping verify` checks them, and the indexer writes to the
# alias. WYE_DEMO_INDEX is that alias: anything but "programs" must end in "programs", and what
# comes before is passed as --index-prefix (demo1_programs: index demo1_programs_v1).
set -euo pipefail
cd "$(dirname "$0")/../.."

DB="${WYE_DEMO_DB:-catalog}"
INDEX="${WYE_DEMO_INDEX:-programs}"
QUEUE="${WYE_DEMO_QUEUE:-wye.index}"
EXCHANGE="${WYE_DEMO_EXCHANGE:-wye.changes}"
METRICS="${WYE_DEMO_METRICS:-127.0.0.1:9464}"
DURATION="${WYE_DEMO_DURATION:-60s}"
declare -A URL=([es7]=http://127.0.0.1:9217 [es8]=http://127.0.0.1:9218 [os2]=http://127.0.0.1:9219)
case "$INDEX" in
  *programs) PREFIX="${INDEX%programs}" ;;
  *) echo "WYE_DEMO_INDEX=$INDEX: must end in \"programs\" (the mapping directory), e.g. demo1_programs" >&2; exit 2 ;;
esac

# config NAME prints the example configuration with this demo's names and NAME as the
# entity's index (where the indexer writes).
config() {
  sed -e "s/catalog\./$DB./g" \
      -e "s/^    index: programs$/    index: $1/" \
      -e "s/^  exchange: wye.changes$/  exchange: $EXCHANGE/" \
      -e "s/^  queue: wye.index$/  queue: $QUEUE/" \
      -e "s/^  listen: 127.0.0.1:9464 .*/  listen: $METRICS/" \
      wye.example.yaml
}
CFG="$(mktemp -t wye-demo.XXXXXX.yaml)"
MCFG="$(mktemp -t wye-demo-mapping.XXXXXX.yaml)"
trap 'rm -f "$CFG" "$MCFG"' EXIT
config "$INDEX" > "$CFG"
# The mapping commands check each entity's index against the mapping directories, without the
# prefix: they get the unprefixed name. With the default names both files are the same.
config programs > "$MCFG"
export WYE_SOURCE_PASSWORD=wye-source WYE_CONTROL_PASSWORD=wye-control WYE_AMQP_PASSWORD=wye-amqp

bash e2e/stack/stack.sh up
go build -o bin/wye ./cmd/wye

echo "== catalog database $DB"
go run ./examples/catalog/workload -dsn "wye_app:wye-app@tcp(127.0.0.1:3306)/$DB" -create examples/catalog/schema.sql

echo "== index ${INDEX}_v1 and alias $INDEX on es7 (master), es8 and os2 (slaves)"
# A fresh index per run, like the database. Explicit names: Elasticsearch 8 refuses wildcard
# deletes, and none of the engines deletes through an alias. The second name is a concrete
# index called $INDEX left by an older demo, which would keep the alias from being created.
for c in es7 es8 os2; do
  curl -fsS -o /dev/null -X DELETE "${URL[$c]}/${INDEX}_v1" 2>/dev/null || true
  curl -fsS -o /dev/null -X DELETE "${URL[$c]}/$INDEX" 2>/dev/null || true
done
bin/wye mapping apply -c "$MCFG" --mappings mappings --index-prefix "$PREFIX"
bin/wye mapping verify -c "$MCFG" --mappings mappings --index-prefix "$PREFIX"

# The database is new, so is the stream: a checkpoint of this reader from an older demo would
# make cdc read every binlog written since (every test's changes) before it reaches this one.
# Without a checkpoint the reader starts where the binlog is now, in an epoch above every
# version already written (the control schema's epoch floor, docs/cdc.md).
mariadb -h 127.0.0.1 -u wye -p"$WYE_CONTROL_PASSWORD" wye \
  -e "DELETE FROM cdc_checkpoint WHERE name = 'demo-$DB'" 2>/dev/null || true

echo "== wye run (cdc + indexer), metrics on http://$METRICS/metrics"
bin/wye run -c "$CFG" --name "demo-$DB" --log-level warn &
WYE=$!
# The pointer to the drill is printed once the workload has run, also after a Ctrl-C.
SHOWN=""
next_step() {
  [ -n "$SHOWN" ] || return 0
  echo
  echo "== next: make drill"
  echo "The demo showed the stream. The migration drill shows the job wye exists for, under a"
  echo "workload and on its own names: es7 loaded as the master, es8 and os2 joined and loaded,"
  echo "diffs, a mapping bump, es8 promoted, os2 cut off and repaired, a rollback to es7, os2"
  echo "promoted, every cluster equal to MySQL at the end (README, \"The migration drill\")."
}
trap 'kill $WYE 2>/dev/null; wait $WYE 2>/dev/null; rm -f "$CFG" "$MCFG"; next_step' EXIT
for _ in $(seq 1 60); do
  curl -fsS -o /dev/null "http://$METRICS/readyz" 2>/dev/null && break
  sleep 0.5
done
sleep 2 # the reader starts at the current binlog position: let it get there first

echo "== workload for $DURATION (then the summary keeps going until Ctrl-C)"
SHOWN=1
go run ./examples/catalog/workload -dsn "wye_app:wye-app@tcp(127.0.0.1:3306)/$DB" -index "$INDEX" \
  -clusters "es7=${URL[es7]},es8=${URL[es8]},os2=${URL[os2]}" -metrics "http://$METRICS/metrics" \
  -duration "$DURATION" -settle "${WYE_DEMO_SETTLE:-0}"

