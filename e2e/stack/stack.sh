#!/usr/bin/env bash
# wye's local stack: MariaDB + RabbitMQ from Debian, Elasticsearch 7.17, Elasticsearch 8.14
# and OpenSearch 2.19 from Maven Central. No Docker. All state lives under $WYE_STACK_DIR.
#
#   stack.sh up     [service...]   install what is missing, start, wait for health
#   stack.sh down   [service...]   stop (data kept)
#   stack.sh status                one line per service
#   stack.sh logs   [service] [n]  tail a service's log
#   stack.sh clean                 down + delete all data (downloads kept)
#
# Services: mariadb rabbitmq es7 es8 os2 prometheus, and on request only: mariadb2, a second MariaDB that
# replicates the first by GTID (the source failover e2e promotes it; `up mariadb2` makes it a
# fresh replica again when it no longer replicates). Idempotent: `up` on a running stack only
# checks it (it restarts MariaDB once, when its TLS settings are new to the running server).
# Invariant: every wait polls a health condition with a deadline, and a failed wait prints
# the failing service's log tail and exits non-zero.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STACK="${WYE_STACK_DIR:-/var/tmp/wye-stack}"
SERVICES=(mariadb rabbitmq es7 es8 os2 prometheus)
OPTIONAL=(mariadb2) # started only when named

MYSQL_PORT="${WYE_MYSQL_PORT:-3306}"
MYSQL2_PORT="${WYE_MYSQL2_PORT:-3307}"
MYSQL_PORT_PRIMARY="$MYSQL_PORT" # mariadb2 replicates this one
AMQP_PORT="${WYE_AMQP_PORT:-5672}"
PROM_PORT="${WYE_PROM_PORT:-9090}"
HEAP="${WYE_STACK_HEAP:-512m}"
WAIT_SECS="${WYE_STACK_WAIT:-240}"

# Search engines: name -> maven coordinates, http port, transport port.
# The codelibs runners for ES 7.17.9 / 8.14.1 are not served by Maven Central (its metadata
# stops at 7.10.2.0), so all three clusters use the engines' own minimal distributions
# ("integ-test-zip", the real server without X-Pack features) from Maven Central.
# ES 8.14.1 is not published in that form; 8.14.3 is the nearest one.
declare -A ENGINE_GAV=(
  [es7]="org.elasticsearch.distribution.integ-test-zip:elasticsearch:7.17.9:zip"
  [es8]="org.elasticsearch.distribution.integ-test-zip:elasticsearch:8.14.3:zip"
  [os2]="org.opensearch.distribution.integ-test-zip:opensearch:2.19.1:zip"
)
declare -A HTTP_PORT=([es7]="${WYE_ES7_PORT:-9217}" [es8]="${WYE_ES8_PORT:-9218}" [os2]="${WYE_OS2_PORT:-9219}")
declare -A TRANSPORT_PORT=([es7]=$((HTTP_PORT[es7] + 100)) [es8]=$((HTTP_PORT[es8] + 100)) [os2]=$((HTTP_PORT[os2] + 100)))

# Dev-only credentials of the local stack; the e2e tests use the same defaults.
SOURCE_USER=wye_source SOURCE_PASS=wye-source   # SELECT + replication on the source
CONTROL_USER=wye CONTROL_PASS=wye-control       # read/write on the control schema only
APP_USER=wye_app APP_PASS=wye-app               # the application/workload user (tests)
TLS_USER=wye_tls TLS_PASS=wye-tls               # source + control grants, REQUIRE SSL (TLS e2e)
AMQP_USER=wye AMQP_PASS=wye-amqp
SVC_USER=wye-stack                              # runs the JVMs when invoked as root

log() { printf '%s stack: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || die "not root and no sudo: cannot install packages"
  SUDO="sudo"
fi

# as USER CMD...: run CMD as USER when we are root; as ourselves otherwise.
as() {
  local user=$1; shift
  if [[ $(id -u) -eq 0 ]]; then runuser -u "$user" -- "$@"; else "$@"; fi
}
own() { # own USER PATH...
  if [[ $(id -u) -eq 0 ]]; then chown -R "$1:$1" "${@:2}"; fi
}

# wait_for DESC LOGFILE CMD...: poll CMD until it succeeds or WAIT_SECS pass.
wait_for() {
  local desc=$1 logfile=$2; shift 2
  local deadline=$((SECONDS + WAIT_SECS))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "$desc not healthy after ${WAIT_SECS}s; last lines of $logfile:"
      tail -n 40 "$logfile" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 1
  done
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- installation

apt_install() {
  log "installing Debian packages: $*"
  # Keep the packages' own init scripts from starting system-wide servers on our ports.
  local policy=/usr/sbin/policy-rc.d added=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee $policy >/dev/null
    $SUDO chmod +x $policy
    added=1
  fi
  if [[ ! -e $STACK/.apt-updated ]] || ! apt-cache policy "$1" | grep -q Candidate; then
    $SUDO apt-get update -qq
    mkdir -p "$STACK" && touch "$STACK/.apt-updated"
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  if [[ -n $added ]]; then $SUDO rm -f $policy; fi
}

java_ok() {
  command -v java >/dev/null || return 1
  local v
  v=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/{print $2}')
  [[ ${v%%.*} -ge 17 ]]
}

install_missing() {
  local pkgs=()
  command -v mariadbd >/dev/null || pkgs+=(mariadb-server mariadb-client)
  [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || ls /usr/lib/rabbitmq/lib/*/sbin/rabbitmq-server >/dev/null 2>&1 || pkgs+=(rabbitmq-server)
  java_ok || pkgs+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || pkgs+=(maven)
  command -v unzip >/dev/null || pkgs+=(unzip)
  command -v curl >/dev/null || pkgs+=(curl)
  if ((${#pkgs[@]})); then apt_install "${pkgs[@]}"; fi
  if [[ $(id -u) -eq 0 ]] && ! id "$SVC_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$SVC_USER"
  fi
}

java_home() { dirname "$(dirname "$(readlink -f "$(command -v java)")")"; }

# Downloads an engine distribution through Maven (~/.m2 caches it) and unpacks it once.
engine_home() {
  local name=$1 gav=${ENGINE_GAV[$1]}
  local artifact version
  artifact=$(cut -d: -f2 <<<"$gav"); version=$(cut -d: -f3 <<<"$gav")
  local home="$STACK/dist/$artifact-$version"
  if [[ ! -x $home/bin/$artifact ]]; then
    log "$name: fetching $gav from Maven Central"
    mkdir -p "$STACK/dist"
    mvn -q -B dependency:copy -Dartifact="$gav" -DoutputDirectory="$STACK/dist" >&2 \
      || die "$name: maven could not fetch $gav"
    unzip -q -o "$STACK/dist/$artifact-$version.zip" -d "$STACK/dist"
    rm -f "$STACK/dist/$artifact-$version.zip"
  fi
  echo "$home"
}

# ---------------------------------------------------------------- MariaDB

# The MariaDB functions act on the instance these variables name: the stack's MariaDB by
# default, the second one inside on_mariadb2 (bash variables are dynamically scoped).
MY="$STACK/mariadb"
MY_NAME=mariadb
MY_SERVER_ID=1
# The CA and server certificate MariaDB serves TLS with; tests trust $MY_TLS/ca.pem. Both
# instances serve the same certificate.
MY_TLS="$MY/tls"
# on_mariadb2 CMD...: run a MariaDB function on the second instance.
on_mariadb2() {
  local MY="$STACK/mariadb2" MY_NAME=mariadb2 MY_SERVER_ID=2 MYSQL_PORT="$MYSQL2_PORT"
  "$@"
}
my_cnf() {
  cat <<EOF
[mariadbd]
datadir=$MY/data
socket=$MY/mysqld.sock
pid-file=$MY/mysqld.pid
port=$MYSQL_PORT
bind-address=127.0.0.1
log_error=$MY/error.log
# CDC: binlog on, row format, full images, strict GTIDs.
server_id=$MY_SERVER_ID
log_bin=$MY/binlog/mariadb-bin
binlog_format=ROW
binlog_row_image=FULL
# Column names, signedness and primary key travel in each TABLE_MAP event, so events
# describe themselves at their own binlog point (ALTER TABLE mid-stream, replays).
binlog_row_metadata=FULL
gtid_strict_mode=ON
expire_logs_days=2
max_connections=500
innodb_buffer_pool_size=256M
innodb_flush_log_at_trx_commit=2
sync_binlog=0
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
default-time-zone='+00:00'
# TLS for the clients that ask for it; plain connections keep working.
ssl_ca=$MY_TLS/ca.pem
ssl_cert=$MY_TLS/server.pem
ssl_key=$MY_TLS/server-key.pem
EOF
  if [[ $MY_NAME == mariadb2 ]]; then
    # A replica that can become the primary: what it applies goes to its own binlog with
    # the primary's GTIDs, so a reader can continue on it from a GTID position of the first.
    # Replication starts only when mariadb2_replicate says so, never by itself at start.
    cat <<EOF
log_slave_updates=ON
relay_log=$MY/binlog/relay-bin
skip_slave_start=ON
innodb_buffer_pool_size=64M
max_connections=100
EOF
  fi
}
# mariadb_tls makes a CA and a server certificate for 127.0.0.1 and localhost, once: they are
# made in a scratch directory and moved into place whole, so a run cut short leaves none.
mariadb_tls() {
  [[ -s $MY_TLS/ca.pem && -s $MY_TLS/server.pem && -s $MY_TLS/server-key.pem ]] && return
  command -v openssl >/dev/null || apt_install openssl
  log "mariadb: creating a CA and a server certificate in $MY_TLS"
  local tmp="$MY/tls.new"
  rm -rf "$tmp" "$MY_TLS" && mkdir -p "$tmp"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=wye local stack CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$tmp/ca-key.pem" -out "$tmp/ca.pem" 2>"$tmp/openssl.log" \
    && openssl req -new -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$tmp/server-key.pem" -out "$tmp/server.csr" 2>>"$tmp/openssl.log" \
    && printf '%s\n' basicConstraints=CA:FALSE keyUsage=digitalSignature,keyEncipherment \
      extendedKeyUsage=serverAuth subjectAltName=DNS:localhost,IP:127.0.0.1 >"$tmp/server.ext" \
    && openssl x509 -req -days 3650 -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca-key.pem" \
      -set_serial "0x$(openssl rand -hex 8)" -extfile "$tmp/server.ext" -out "$tmp/server.pem" 2>>"$tmp/openssl.log" \
    || { cat "$tmp/openssl.log" >&2; die "mariadb: openssl could not make the TLS certificates"; }
  rm -f "$tmp/server.csr" "$tmp/server.ext" "$tmp/openssl.log"
  chmod 644 "$tmp/ca.pem" "$tmp/server.pem" && chmod 600 "$tmp/ca-key.pem" "$tmp/server-key.pem"
  mv "$tmp" "$MY_TLS"
}
# As root, mariadbd runs as `mysql` and root logs in by unix socket; otherwise both are the
# invoking user (mariadb-install-db gives that user a socket-authenticated account too).
my_user() { if [[ $(id -u) -eq 0 ]]; then echo mysql; else id -un; fi; }
mysql_root() { mariadb --socket="$MY/mysqld.sock" -u "$(if [[ $(id -u) -eq 0 ]]; then echo root; else id -un; fi)" "$@"; }
# my_users: the stack's accounts, on this instance only (not written to its binlog).
my_users() {
  mysql_root <<SQL
SET SESSION sql_log_bin = 0;
CREATE USER IF NOT EXISTS '$SOURCE_USER'@'%' IDENTIFIED BY '$SOURCE_PASS';
GRANT SELECT, RELOAD, REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR ON *.* TO '$SOURCE_USER'@'%';
CREATE USER IF NOT EXISTS '$CONTROL_USER'@'%' IDENTIFIED BY '$CONTROL_PASS';
GRANT ALL PRIVILEGES ON wye.* TO '$CONTROL_USER'@'%';
CREATE USER IF NOT EXISTS '$APP_USER'@'%' IDENTIFIED BY '$APP_PASS';
GRANT ALL PRIVILEGES ON *.* TO '$APP_USER'@'%';
CREATE USER IF NOT EXISTS '$TLS_USER'@'%' IDENTIFIED BY '$TLS_PASS' REQUIRE SSL;
GRANT SELECT, RELOAD, REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR ON *.* TO '$TLS_USER'@'%';
GRANT ALL PRIVILEGES ON wye.* TO '$TLS_USER'@'%';
SQL
}
mariadb_up() { mysql_root -e 'SELECT 1' >/dev/null 2>&1; }
mariadb_start() {
  mkdir -p "$MY/binlog"
  mariadb_tls
  my_cnf >"$MY/my.cnf"
  if [[ ! -d $MY/data/mysql ]]; then
    log "$MY_NAME: initializing data directory"
    own mysql "$MY"
    mariadb-install-db --defaults-file="$MY/my.cnf" --user="$(my_user)" --skip-test-db \
      --auth-root-authentication-method=socket >"$MY/install.log" 2>&1 \
      || { tail -n 30 "$MY/install.log" >&2; die "$MY_NAME: install-db failed"; }
  fi
  own mysql "$MY"
  # ssl_* are read at start only: a server started before they were in my.cnf is restarted,
  # once (after that its ssl_cert is ours); tests running meanwhile see one MariaDB restart.
  if mariadb_up 2>/dev/null && [[ $(mysql_root -Nse 'SELECT @@ssl_cert') != "$MY_TLS/server.pem" ]]; then
    log "mariadb: restarting once to serve TLS (ssl_cert is new in $MY/my.cnf)"
    mariadb_stop
  fi
  if ! mariadb_up 2>/dev/null; then
    port_busy "$MYSQL_PORT" && die "$MY_NAME: port $MYSQL_PORT is taken by another process (set WYE_MYSQL_PORT / WYE_MYSQL2_PORT)"
    log "$MY_NAME: starting on 127.0.0.1:$MYSQL_PORT"
    setsid nohup mariadbd --defaults-file="$MY/my.cnf" --user="$(my_user)" >>"$MY/error.log" 2>&1 </dev/null &
    wait_for "$MY_NAME" "$MY/error.log" mariadb_up
  fi
  [[ $(mysql_root -Nse 'SELECT @@have_ssl') == YES ]] \
    || { tail -n 20 "$MY/error.log" >&2; die "$MY_NAME: does not serve TLS with $MY_TLS"; }
  my_users
  [[ $MY_NAME == mariadb ]] || return 0
  mysql_root <<SQL
CREATE DATABASE IF NOT EXISTS wye;
CREATE DATABASE IF NOT EXISTS catalog CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS wye_test CHARACTER SET utf8mb4;
SQL
}
mariadb_stop() {
  if mariadb_up 2>/dev/null; then
    log "$MY_NAME: stopping"
    mysql_root -e 'SHUTDOWN' || true
    local deadline=$((SECONDS + 60))
    while [[ -e $MY/mysqld.pid ]] && kill -0 "$(cat "$MY/mysqld.pid" 2>/dev/null)" 2>/dev/null; do
      ((SECONDS < deadline)) || die "$MY_NAME: did not stop within 60s"
      sleep 0.5
    done
  fi
}
mariadb_status() {
  if mariadb_up 2>/dev/null; then
    local extra=""
    [[ $MY_NAME == mariadb ]] || extra=" replicating=$(mariadb2_replicating && echo yes || echo no)"
    printf '%-9s up    127.0.0.1:%s  %s binlog=%s tls=%s%s\n' "$MY_NAME" "$MYSQL_PORT" "$(mysql_root -Nse 'SELECT VERSION()')" \
      "$(mysql_root -Nse "SELECT @@log_bin, @@binlog_format" | tr '\t' '/')" "$(mysql_root -Nse 'SELECT @@have_ssl')" "$extra"
  else
    printf '%-9s down\n' "$MY_NAME"
  fi
}

# mariadb2_replicating: run on_mariadb2; true while both replication threads run.
mariadb2_replicating() {
  [[ $(mysql_root -e 'SHOW SLAVE STATUS\G' 2>/dev/null | grep -c -E 'Slave_(IO|SQL)_Running: Yes') == 2 ]]
}
# primary_sql ARGS...: the mariadb client as root on the stack's MariaDB.
primary_sql() { mariadb --socket="$STACK/mariadb/mysqld.sock" -u "$(if [[ $(id -u) -eq 0 ]]; then echo root; else id -un; fi)" "$@"; }
# mariadb2_caught_up GTID_POS: run on_mariadb2; true once it applied GTID_POS.
mariadb2_caught_up() { [[ $(mysql_root -Nse "SELECT MASTER_GTID_WAIT('$1', 1)") == 0 ]]; }
# mariadb2_replicate: run on_mariadb2 after mariadb_start. Unless it already replicates, it
# becomes a fresh replica of the stack's MariaDB: its databases replaced by a consistent dump of
# the primary's (small: the tests' own), its binlog reset to start at the dump's GTID position,
# replication by GTID from there. Then it waits until it has applied the primary's position.
mariadb2_replicate() {
  primary_sql -e 'SELECT 1' >/dev/null 2>&1 || die "mariadb2: the stack's MariaDB is not up (stack.sh up mariadb)"
  if ! mariadb2_replicating; then
    log "mariadb2: provisioning as a GTID replica of 127.0.0.1:$MYSQL_PORT_PRIMARY"
    local sys="'mysql','information_schema','performance_schema','sys'" db dbs dump="$MY/dump.sql" gtid try
    mysql_root -e 'STOP SLAVE; RESET SLAVE ALL' >/dev/null 2>&1 || true
    for db in $(mysql_root -Nse "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN ($sys)"); do
      mysql_root -e "SET SESSION sql_log_bin = 0; DROP DATABASE \`$db\`"
    done
    # --single-transaction: a consistent snapshot and its GTID position; a test changing a
    # table meanwhile can fail a dump ("table definition has changed"): try again.
    # The dump reads its GTID position with BINLOG_GTID_POS, which is NULL (and mariadb-dump
    # 10.11 crashes on it) at any position behind an event larger than max_allowed_packet in
    # the same binlog file (a 64 MB row): start a fresh binlog file first.
    primary_sql -e 'FLUSH BINARY LOGS' || die "mariadb2: could not rotate the primary's binlog"
    for try in 1 2 3 4 5; do
      dbs=$(primary_sql -Nse "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN ($sys)")
      # shellcheck disable=SC2086 # one word per database
      if mariadb-dump --socket="$STACK/mariadb/mysqld.sock" \
        -u "$(if [[ $(id -u) -eq 0 ]]; then echo root; else id -un; fi)" --single-transaction --gtid \
        --master-data=2 --routines --events --triggers --databases $dbs >"$dump" 2>"$MY/dump.log"; then
        break
      fi
      ((try < 5)) || { cat "$MY/dump.log" >&2; die "mariadb2: could not dump the primary"; }
    done
    gtid=$(sed -n "s/^-- SET GLOBAL gtid_slave_pos='\(.*\)';/\1/p" "$dump")
    [[ -n $gtid ]] || die "mariadb2: the dump names no GTID position"
    mysql_root --init-command='SET SESSION sql_log_bin = 0' <"$dump" || die "mariadb2: loading the dump failed"
    rm -f "$dump"
    # The binlog starts at the dump's position: a reader can resume here from any GTID
    # position of the primary from that one on.
    mysql_root <<SQL
RESET MASTER;
SET GLOBAL gtid_binlog_state = '$gtid';
SET GLOBAL gtid_slave_pos = '$gtid';
CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = $MYSQL_PORT_PRIMARY, MASTER_USER = '$SOURCE_USER',
  MASTER_PASSWORD = '$SOURCE_PASS', MASTER_USE_GTID = slave_pos;
START SLAVE;
SQL
  fi
  local pos; pos=$(primary_sql -Nse 'SELECT @@gtid_binlog_pos')
  wait_for "mariadb2 replication up to $pos" "$MY/error.log" mariadb2_caught_up "$pos"
}

# ---------------------------------------------------------------- RabbitMQ

RQ="$STACK/rabbitmq"
rabbit_bin() { # the real scripts, not Debian's wrappers that switch user and reset the env
  local d
  for d in /usr/lib/rabbitmq/bin /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin; do
    [[ -x $d/$1 ]] && { echo "$d/$1"; return; }
  done
  die "rabbitmq: $1 not found"
}
rabbit_user() { if [[ $(id -u) -eq 0 ]]; then echo rabbitmq; else id -un; fi; }
rabbit() { # rabbit CMD ARGS...: run a rabbitmq script against our node, with our env
  local cmd=$1; shift
  as "$(rabbit_user)" env HOME="$RQ/home" \
    RABBITMQ_NODENAME=wye@localhost \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$AMQP_PORT" \
    RABBITMQ_DIST_PORT=$((AMQP_PORT + 20000)) \
    RABBITMQ_MNESIA_BASE="$RQ/mnesia" RABBITMQ_LOG_BASE="$RQ/log" \
    RABBITMQ_CONFIG_FILE="$RQ/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$RQ/enabled_plugins" \
    RABBITMQ_PID_FILE="$RQ/rabbitmq.pid" \
    "$(rabbit_bin "$cmd")" "$@"
}
rabbit_up() { rabbit rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; }
rabbit_start() {
  mkdir -p "$RQ/home" "$RQ/mnesia" "$RQ/log"
  cat >"$RQ/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
log.file.level = info
vm_memory_high_watermark.relative = 0.2
EOF
  echo '[rabbitmq_consistent_hash_exchange].' >"$RQ/enabled_plugins"
  own "$(rabbit_user)" "$RQ"
  if ! rabbit_up 2>/dev/null; then
    port_busy "$AMQP_PORT" && die "rabbitmq: port $AMQP_PORT is taken by another process (set WYE_AMQP_PORT)"
    log "rabbitmq: starting on 127.0.0.1:$AMQP_PORT"
    rabbit rabbitmq-server -detached >>"$RQ/start.log" 2>&1 || { tail -n 30 "$RQ/start.log" >&2; die "rabbitmq: start failed"; }
    wait_for rabbitmq "$RQ/log/wye@localhost.log" rabbit rabbitmqctl -q await_startup --timeout 5
  fi
  if ! rabbit rabbitmqctl -q list_users | grep -q "^$AMQP_USER\b"; then
    rabbit rabbitmqctl -q add_user "$AMQP_USER" "$AMQP_PASS" >/dev/null
    rabbit rabbitmqctl -q set_user_tags "$AMQP_USER" administrator >/dev/null
    rabbit rabbitmqctl -q set_permissions -p / "$AMQP_USER" '.*' '.*' '.*' >/dev/null
  fi
}
rabbit_stop() {
  if rabbit_up 2>/dev/null; then
    log "rabbitmq: stopping"
    rabbit rabbitmqctl -q stop >/dev/null 2>&1 || true
  fi
}
rabbit_status() {
  if rabbit_up 2>/dev/null; then
    echo "rabbitmq  up    127.0.0.1:$AMQP_PORT  $(rabbit rabbitmqctl -q version) plugins=$(rabbit rabbitmq-plugins -q list -e -m | tr '\n' ',')"
  else
    echo "rabbitmq  down"
  fi
}

# ---------------------------------------------------------------- Prometheus

# Prometheus (Debian `prometheus`, which ships promtool too) scrapes whatever wye processes the
# tests announce: each writes a file_sd JSON file into $PROM/targets (read on change, no reload)
# and removes it when done. No rules are loaded: tests query expressions through the HTTP API,
# and `promtool check rules` / `promtool test rules` check deploy/prometheus/ offline.
PROM="$STACK/prometheus"
prom_up() { curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null 2>&1; }
prom_user() { if [[ $(id -u) -eq 0 ]] && id prometheus >/dev/null 2>&1; then echo prometheus; else id -un; fi; }
prom_pid() { pgrep -f -- "--config.file=$PROM/prometheus.yml" | head -n1 || true; }
prom_start() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null || apt_install prometheus
  mkdir -p "$PROM/data" "$PROM/targets"
  cat >"$PROM/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: wye
    file_sd_configs:
      - files: ['$PROM/targets/*.json']
EOF
  own "$(prom_user)" "$PROM"
  chmod 1777 "$PROM/targets" # tests of any user announce their targets here
  if ! prom_up; then
    port_busy "$PROM_PORT" && die "prometheus: port $PROM_PORT is taken by another process (set WYE_PROM_PORT)"
    log "prometheus: starting on 127.0.0.1:$PROM_PORT"
    local runas=()
    [[ $(prom_user) == "$(id -un)" ]] || runas=(runuser -u "$(prom_user)" --)
    setsid nohup "${runas[@]}" prometheus --config.file="$PROM/prometheus.yml" --storage.tsdb.path="$PROM/data" \
      --storage.tsdb.retention.time=1d --web.listen-address="127.0.0.1:$PROM_PORT" \
      >>"$PROM/prometheus.log" 2>&1 </dev/null &
    wait_for prometheus "$PROM/prometheus.log" prom_up
  fi
}
prom_stop() {
  local pid; pid=$(prom_pid)
  if [[ -n $pid ]]; then
    log "prometheus: stopping (pid $pid)"
    kill "$pid"
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
      ((SECONDS < deadline)) || { kill -9 "$pid" 2>/dev/null || true; break; }
      sleep 0.5
    done
  fi
}
prom_status() {
  if prom_up; then
    printf '%-9s up    http://127.0.0.1:%s  %s targets=%s\n' prometheus "$PROM_PORT" \
      "$(prometheus --version 2>&1 | head -n1 | awk '{print $3}')" "$PROM/targets"
  else
    printf '%-9s down\n' prometheus
  fi
}

# ---------------------------------------------------------------- search engines

engine_url() { echo "http://127.0.0.1:${HTTP_PORT[$1]}"; }
engine_up() {
  curl -fsS "$(engine_url "$1")/_cluster/health?wait_for_status=yellow&timeout=1s" | grep -q '"status"'
}
engine_pid() { cat "$STACK/$1/pid" 2>/dev/null; }
engine_start() {
  local name=$1 home dir="$STACK/$1"
  home=$(engine_home "$name")
  local bin; bin=$(basename "$(cut -d: -f2 <<<"${ENGINE_GAV[$name]}")")
  if engine_up "$name" 2>/dev/null; then return; fi
  port_busy "${HTTP_PORT[$name]}" && die "$name: port ${HTTP_PORT[$name]} is taken by another process"
  mkdir -p "$dir/data" "$dir/logs"
  if [[ ! -d $dir/config ]]; then cp -r "$home/config" "$dir/config"; fi
  # jvm.options names logs/ and data relative to the distribution's home, where the
  # launcher cds to; point them at this cluster's own directories.
  sed -i -e "s#file=logs/#file=$dir/logs/#" -e "s#HeapDumpPath=data#HeapDumpPath=$dir/data#" \
    -e "s#ErrorFile=logs/#ErrorFile=$dir/logs/#" "$dir/config/jvm.options"
  local yml="$dir/config/$bin.yml"
  {
    echo "cluster.name: wye-$name"
    echo "node.name: $name"
    echo "path.data: $dir/data"
    echo "path.logs: $dir/logs"
    echo "network.host: 127.0.0.1"
    echo "http.port: ${HTTP_PORT[$name]}"
    echo "transport.port: ${TRANSPORT_PORT[$name]}"
    echo "discovery.type: single-node"
    echo "cluster.routing.allocation.disk.threshold_enabled: false"
    echo "action.auto_create_index: true"
    if [[ $bin == elasticsearch ]]; then echo "xpack.security.enabled: false"; fi
  } >"$yml"
  local runas=$SVC_USER
  [[ $(id -u) -eq 0 ]] || runas=$(id -un)
  own "$runas" "$dir"
  chmod 755 "$STACK" "$STACK/dist"
  log "$name: starting $(basename "$home") on $(engine_url "$name") (heap $HEAP)"
  local jh; jh=$(java_home)
  local confvar=ES_PATH_CONF optsvar=ES_JAVA_OPTS
  if [[ $bin == opensearch ]]; then confvar=OPENSEARCH_PATH_CONF optsvar=OPENSEARCH_JAVA_OPTS; fi
  mkdir -p "$dir/tmp" && own "$runas" "$dir/tmp"
  (cd "$dir" && as "$runas" env JAVA_HOME="$jh" ES_JAVA_HOME="$jh" OPENSEARCH_JAVA_HOME="$jh" \
    ES_TMPDIR="$dir/tmp" OPENSEARCH_TMPDIR="$dir/tmp" \
    "$confvar=$dir/config" "$optsvar=-Xms$HEAP -Xmx$HEAP" \
    "$home/bin/$bin" -d -p "$dir/pid") >>"$dir/start.log" 2>&1 \
    || { tail -n 30 "$dir/start.log" >&2; tail -n 30 "$dir/logs/wye-$name.log" >&2 2>/dev/null; die "$name: start failed"; }
}
engine_wait() { wait_for "$1" "$STACK/$1/logs/wye-$1.log" engine_up "$1"; }
engine_stop() {
  local name=$1 pid; pid=$(engine_pid "$name")
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    log "$name: stopping (pid $pid)"
    kill "$pid"
    local deadline=$((SECONDS + 60))
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS >= deadline)); then kill -9 "$pid" 2>/dev/null || true; break; fi
      sleep 0.5
    done
  fi
  rm -f "$STACK/$name/pid"
}
engine_status() {
  local name=$1 body
  # Version from /_nodes/_local: the ES 8 integ-test-zip lacks the rest-root module, so
  # GET / answers 405 there.
  if body=$(curl -fsS "$(engine_url "$name")/_nodes/_local?filter_path=nodes.*.version" 2>/dev/null); then
    local ver health
    ver=$(grep -o '"version":"[^"]*"' <<<"$body" | cut -d'"' -f4 || true)
    health=$(curl -fsS "$(engine_url "$name")/_cluster/health" | grep -o '"status":"[^"]*"' | cut -d'"' -f4 || true)
    printf '%-9s up    %s  %s %s health=%s\n' "$name" "$(engine_url "$name")" \
      "$(cut -d: -f2 <<<"${ENGINE_GAV[$name]}")" "$ver" "$health"
  else
    printf '%-9s down\n' "$name"
  fi
}

# ---------------------------------------------------------------- commands

pick() { if (($#)); then echo "$@"; else echo "${SERVICES[@]}"; fi; }
# pick_all: like pick, but with no names the optional services too (down, status).
pick_all() { if (($#)); then echo "$@"; else echo "${SERVICES[@]}" "${OPTIONAL[@]}"; fi; }
check_names() {
  local s
  for s in "$@"; do
    [[ " ${SERVICES[*]} ${OPTIONAL[*]} " == *" $s "* ]] || die "unknown service '$s' (known: ${SERVICES[*]} ${OPTIONAL[*]})"
  done
}

cmd_up() {
  check_names "$@"
  mkdir -p "$STACK"; chmod 755 "$STACK"
  install_missing
  local s engines=()
  # Start the JVMs first: they take longest, and start in parallel with the databases.
  for s in $(pick "$@"); do
    case $s in es7 | es8 | os2) engine_start "$s"; engines+=("$s") ;; esac
  done
  for s in $(pick "$@"); do
    case $s in
      mariadb) mariadb_start ;;
      mariadb2) on_mariadb2 mariadb_start && on_mariadb2 mariadb2_replicate ;;
      rabbitmq) rabbit_start ;;
      prometheus) prom_start ;;
    esac
  done
  for s in "${engines[@]}"; do engine_wait "$s"; done
  cmd_status "$@"
}
cmd_down() {
  check_names "$@"
  local s
  for s in $(pick_all "$@"); do
    case $s in
      mariadb) mariadb_stop ;;
      mariadb2) on_mariadb2 mariadb_stop ;;
      rabbitmq) rabbit_stop ;;
      prometheus) prom_stop ;;
      *) engine_stop "$s" ;;
    esac
  done
}
cmd_status() {
  local s
  for s in $(pick_all "$@"); do
    case $s in
      mariadb) mariadb_status ;;
      mariadb2) on_mariadb2 mariadb_status ;;
      rabbitmq) rabbit_status ;;
      prometheus) prom_status ;;
      *) engine_status "$s" ;;
    esac
  done
}
cmd_logs() {
  local s=${1:-} n=${2:-50}
  case $s in
    mariadb) tail -n "$n" "$MY/error.log" ;;
    mariadb2) tail -n "$n" "$STACK/mariadb2/error.log" ;;
    rabbitmq) tail -n "$n" "$RQ/log/wye@localhost.log" ;;
    prometheus) tail -n "$n" "$PROM/prometheus.log" ;;
    es7 | es8 | os2) tail -n "$n" "$STACK/$s/logs/wye-$s.log" ;;
    *) die "usage: stack.sh logs {${SERVICES[*]} ${OPTIONAL[*]}} [lines]" ;;
  esac
}
cmd_clean() {
  cmd_down
  log "removing data under $STACK (downloads in $STACK/dist are kept)"
  rm -rf "$MY" "$STACK/mariadb2" "$RQ" "$STACK/es7" "$STACK/es8" "$STACK/os2" "$PROM"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  status) shift; cmd_status "$@" ;;
  logs) shift; cmd_logs "$@" ;;
  clean) shift; cmd_clean ;;
  *) echo "usage: $0 {up|down|status|logs|clean} [service...]   services: ${SERVICES[*]} (on request: ${OPTIONAL[*]})" >&2; exit 2 ;;
esac
