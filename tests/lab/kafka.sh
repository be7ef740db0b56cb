#!/usr/bin/env bash
# The lab's Apache Kafka: three KRaft nodes (broker+controller each, racks a/b/c) and one Kafka
# Connect distributed worker, all on 127.0.0.1, built from Maven Central jars.
#
#   tests/lab/kafka.sh fetch                 jars into .lab/kafka/libs (skipped when present)
#   tests/lab/kafka.sh up                    start what is not running, wait, write .lab/kafka.env
#   tests/lab/kafka.sh down [--purge]        stop everything by pid; --purge also drops the data
#   tests/lab/kafka.sh stop-broker N [--kill]   stop node N (SIGTERM, or SIGKILL for a crash)
#   tests/lab/kafka.sh start-broker N        start node N again, same ports and data, and wait
#   tests/lab/kafka.sh status                what runs, on which port, what each node sees
#   tests/lab/kafka.sh selftest              Python clients of the venv against the lab
#
# Everything lives under <repo>/.lab (ignored by git). Processes are only ever ended by the pids
# this script wrote; nothing is killed by name.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)   # tests/lab
ROOT=$(cd "$HERE/../.." && pwd)                        # repository root, wherever it is cloned
LAB=$ROOT/.lab
K=$LAB/kafka
LIBS=$K/libs
CONF=$K/conf
RUN=$K/run
LOGS=$K/logs
CDS=$K/cds                  # class-data sharing archives (see cds_args)
STATE=$K/state.env          # ports and cluster id, picked once and kept across restarts
TLS=$K/tls                  # the lab CA, certificates and SCRAM passwords (see ensure_tls)
ENV_FILE=$LAB/kafka.env     # what tests and playbooks read
POM=$HERE/kafka/pom.xml
NODES=(1 2 3)
RACKS=(x a b c)             # RACKS[N] is node N's rack
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
PYTHON=${PYTHON:-python3}

# Ready timeouts (seconds); generous because a 2-core CI machine may be busy with other things.
BROKER_READY_TIMEOUT=${KAFKA_LAB_BROKER_TIMEOUT:-180}
CONNECT_READY_TIMEOUT=${KAFKA_LAB_CONNECT_TIMEOUT:-180}
STOP_TIMEOUT=${KAFKA_LAB_STOP_TIMEOUT:-60}

# Small heaps and a fast start on two cores: the serial collector (no GC threads competing with
# four JVMs), class data sharing, and exit instead of limping on after an OutOfMemoryError.
JVM_COMMON=(-XX:+UseSerialGC -Xshare:auto -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
            -Djava.net.preferIPv4Stack=true
            "-Dlog4j2.configurationFile=$HERE/kafka/log4j2.properties" "-Dkafka.logs.dir=$LOGS")
read -r -a BROKER_HEAP <<< "${KAFKA_LAB_BROKER_HEAP:--Xms128m -Xmx384m}"
read -r -a CONNECT_HEAP <<< "${KAFKA_LAB_CONNECT_HEAP:--Xms128m -Xmx384m}"

log() { printf '[kafka-lab] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
labkit() { "$PYTHON" "$HERE/kafka/labkit.py" "$@"; }

kafka_version() {
    sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1
}

# ---------------------------------------------------------------------------------------------
# fetch: Kafka's jars from Maven Central, with Maven's cache under .lab/m2.

fetch() {
    local stamp
    stamp="$(sha256sum "$POM" | cut -d' ' -f1)"
    # The stamp is the pom's hash: a warm start skips Maven entirely (it alone costs seconds),
    # and a changed pom (another Kafka version) fetches again.
    if [[ -f $LIBS/.complete && "$(cat "$LIBS/.complete")" == "$stamp" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (Maven is needed for the first fetch)"
    local t0; t0=$(now)
    log "fetching Kafka $(kafka_version) jars from Maven Central into $LIBS"
    rm -rf "$LIBS.tmp"
    mkdir -p "$LAB/m2" "$K"
    # Into a temporary folder, then renamed: an interrupted fetch never looks complete.
    # Maven's own output goes to a file (Debian's mvn prints colour codes even with -B -q).
    if ! mvn -B -q -Dstyle.color=never -f "$POM" -Dmaven.repo.local="$LAB/m2" \
        -Dlab.libs.dir="$LIBS.tmp" \
        org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
        >"$K/fetch.log" 2>&1; then
        tail -n 40 "$K/fetch.log" >&2
        die "Maven could not fetch the Kafka jars (full output: $K/fetch.log)"
    fi
    # kafka-tool finds tool classes by name in this index instead of opening jars every run.
    labkit class-index "$LIBS.tmp/.classes" "$LIBS.tmp"/*.jar
    echo "$stamp" >"$LIBS.tmp/.complete"
    rm -rf "$LIBS" "$CDS"   # class-data archives belong to the old jars
    mv "$LIBS.tmp" "$LIBS"
    local jars=("$LIBS"/*.jar)
    log "fetched ${#jars[@]} jars in $(since "$t0")s"
}

# ---------------------------------------------------------------------------------------------
# State (ports, cluster id) and configuration files.

ensure_state() {
    if [[ ! -f $STATE ]]; then
        mkdir -p "$K"
        local ports
        mapfile -t ports < <(labkit ports 7)
        {
            echo "# Picked at first start; kept so restarts keep their addresses."
            echo "CLUSTER_ID=$(labkit cluster-id)"
            for n in "${NODES[@]}"; do
                echo "BROKER_PORT_$n=${ports[$((n - 1))]}"
                echo "CONTROLLER_PORT_$n=${ports[$((n + 2))]}"
            done
            echo "CONNECT_PORT=${ports[6]}"
        } >"$STATE.tmp"
        mv "$STATE.tmp" "$STATE"
        log "picked ports and cluster id: $STATE"
    fi
    # shellcheck disable=SC1090
    source "$STATE"
    if [[ -z ${SASL_SSL_PORT_1:-} ]]; then  # a state from before the secured listeners
        local more
        mapfile -t more < <(labkit ports 6)
        for n in "${NODES[@]}"; do
            echo "SASL_SSL_PORT_$n=${more[$((n - 1))]}"
            echo "MTLS_PORT_$n=${more[$((n + 2))]}"
        done >>"$STATE"
        # shellcheck disable=SC1090
        source "$STATE"
    fi
}

port_of() { local v="$1_$2"; echo "${!v}"; }  # PORT-VARIABLE-PREFIX NODE
broker_port() { port_of BROKER_PORT "$1"; }
controller_port() { port_of CONTROLLER_PORT "$1"; }

bootstrap_servers() {  # [PORT-VARIABLE-PREFIX]: BROKER_PORT (default), SASL_SSL_PORT or MTLS_PORT
    local n out=()
    for n in "${NODES[@]}"; do out+=("127.0.0.1:$(port_of "${1:-BROKER_PORT}" "$n")"); done
    (IFS=,; echo "${out[*]}")
}

# Rendered on every start (it is cheap) so that template edits take effect on the next start.
render_configs() {
    mkdir -p "$CONF" "$RUN" "$LOGS"
    local n voters=()
    for n in "${NODES[@]}"; do voters+=("$n@127.0.0.1:$(controller_port "$n")"); done
    local quorum; quorum=$(IFS=,; echo "${voters[*]}")
    for n in "${NODES[@]}"; do
        sed -e "s|@NODE_ID@|$n|g" -e "s|@RACK@|${RACKS[$n]}|g" \
            -e "s|@BROKER_PORT@|$(broker_port "$n")|g" \
            -e "s|@CONTROLLER_PORT@|$(controller_port "$n")|g" \
            -e "s|@SASL_SSL_PORT@|$(port_of SASL_SSL_PORT "$n")|g" -e "s|@MTLS_PORT@|$(port_of MTLS_PORT "$n")|g" \
            -e "s|@TLS_DIR@|$TLS|g" \
            -e "s|@QUORUM_VOTERS@|$quorum|g" -e "s|@DATA_DIR@|$K/data/$n|g" \
            "$HERE/kafka/broker.properties.in" >"$CONF/broker-$n.properties"
    done
    local file_jar
    file_jar=$(find "$LIBS" -maxdepth 1 -name 'connect-file-*.jar' | head -n1)
    [[ -n $file_jar ]] || die "connect-file jar missing from $LIBS"
    sed -e "s|@BOOTSTRAP_SERVERS@|$(bootstrap_servers)|g" -e "s|@CONNECT_PORT@|$CONNECT_PORT|g" \
        -e "s|@CONNECT_FILE_JAR@|$file_jar|g" \
        "$HERE/kafka/connect-distributed.properties.in" >"$CONF/connect-distributed.properties"
}

# Kafka's storage tool writes meta.properties (cluster id, node id) into each data dir; only
# for nodes not formatted yet, all three at once since each is a JVM start.
format_storage() {
    local n pids=()
    for n in "${NODES[@]}"; do
        [[ -f $K/data/$n/meta.properties ]] && continue
        mkdir -p "$K/data/$n"
        log "formatting storage of node $n (cluster $CLUSTER_ID)"
        "$HERE/kafka-tool" storage format --cluster-id "$CLUSTER_ID" \
            --config "$CONF/broker-$n.properties" --ignore-formatted \
            >"$LOGS/format-$n.out" 2>&1 &
        pids+=($!)
    done
    local p rc=0
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    ((rc == 0)) || die "storage format failed: $(tail -n 5 "$LOGS"/format-*.out)"
}

# ---------------------------------------------------------------------------------------------
# Security: the lab's own CA and certificates (openssl, made once and kept), SCRAM users and ACLs
# (Kafka's own kafka-configs and kafka-acls, once per cluster). A second CA signs a "rogue" client
# certificate, for the tests of an untrusted CA and of a client the brokers must refuse.

SCRAM_USERS=(streamops nobody)  # streamops: the operator, with ACLs; nobody: authenticated, no ACL

tls_cert() {  # ca name cn [san]: key + certificate signed by ca, PKCS#8 key (what Kafka's PEM store reads)
    local ca=$1 name=$2 cn=$3 san=${4:-}
    openssl req -new -newkey rsa:2048 -nodes -keyout "$TLS/$name.key" -subj "/CN=$cn" \
        -out "$TLS/$name.csr" 2>/dev/null
    {
        echo "extendedKeyUsage=serverAuth,clientAuth"
        [[ -z $san ]] || echo "subjectAltName=$san"
    } >"$TLS/$name.ext"
    openssl x509 -req -in "$TLS/$name.csr" -CA "$TLS/$ca.pem" -CAkey "$TLS/$ca.key" -set_serial "0x$(openssl rand -hex 8)" \
        -days 3650 -sha256 -extfile "$TLS/$name.ext" -out "$TLS/$name.pem" 2>/dev/null
    rm -f "$TLS/$name.csr" "$TLS/$name.ext"
}

ensure_tls() {
    [[ -f $TLS/.complete ]] && return 0
    if ! command -v openssl >/dev/null; then   # Debian's, as the Kubernetes part installs it too
        log "installing openssl (the lab makes its CA with it)"
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends openssl \
            >"$K/apt.log" 2>&1 || die "openssl could not be installed (see $K/apt.log)"
    fi
    rm -rf "$TLS"
    mkdir -p "$TLS"
    chmod 700 "$TLS"
    local ca
    for ca in ca rogue-ca; do
        openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TLS/$ca.key" -out "$TLS/$ca.pem" -days 3650 -sha256 \
            -subj "/CN=streamops lab $ca" -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    done
    tls_cert ca broker "streamops lab broker" "IP:127.0.0.1,DNS:localhost"
    cat "$TLS/broker.key" "$TLS/broker.pem" >"$TLS/broker-keystore.pem"
    tls_cert ca client streamops            # mTLS as User:streamops
    tls_cert rogue-ca rogue-client streamops  # the same name from a CA the brokers do not trust
    local user
    for user in "${SCRAM_USERS[@]}"; do openssl rand -hex 12 >"$TLS/$user.password"; done
    chmod 600 "$TLS"/*
    touch "$TLS/.complete"
    log "made the lab CA and certificates in $TLS"
}

# The operator's rights, as a production cluster would grant them to a day-2 automation account
# (not a super user): the cluster-level admin operations, and every topic, group and transaction.
OPERATOR_ACLS=(
    "--cluster --operation Describe --operation Alter --operation DescribeConfigs --operation AlterConfigs --operation Create"
    "--topic * --operation All"
    "--group * --operation All"
    "--transactional-id * --operation All"
)

ensure_security() {  # SCRAM users and ACLs live in the cluster's metadata: made once per cluster
    local stamp=$K/data/security.ready spec
    spec=$(printf '%s\n' "${SCRAM_USERS[@]}" "${OPERATOR_ACLS[@]}" | sha256sum | cut -d' ' -f1)
    [[ -f $stamp && "$(cat "$stamp")" == "$spec" ]] && return 0
    local t0 user acl args
    t0=$(now)
    for user in "${SCRAM_USERS[@]}"; do
        "$HERE/kafka-tool" configs --bootstrap-server "$(bootstrap_servers)" --alter --entity-type users \
            --entity-name "$user" --add-config "SCRAM-SHA-512=[password=$(cat "$TLS/$user.password")]" \
            >"$LOGS/security.out" 2>&1 || die "creating SCRAM user $user failed: $(tail -n 5 "$LOGS/security.out")"
    done
    for acl in "${OPERATOR_ACLS[@]}"; do
        read -r -a args <<<"$acl"
        "$HERE/kafka-tool" acls --bootstrap-server "$(bootstrap_servers)" --add --allow-principal User:streamops \
            "${args[@]}" >"$LOGS/security.out" 2>&1 || die "adding ACL '$acl' failed: $(tail -n 5 "$LOGS/security.out")"
    done
    echo "$spec" >"$stamp"
    log "SCRAM users (${SCRAM_USERS[*]}) and the operator's ACLs made in $(since "$t0")s"
}

# ---------------------------------------------------------------------------------------------
# Class-data sharing (JDK dynamic AppCDS): loading and verifying Kafka's ~10k classes is most of
# a JVM's start on two cores. The first run of a role records the classes it loaded into
# cds/<role>.jsa.dump when it exits cleanly (at `down`); later starts map that archive (measured
# here: a kafka-tool run 0.95 s -> 0.45 s; brokers and Connect gain a second or so each, which
# matters when four JVMs start at once on two cores). The JVM checks the archive against the class path and ignores it,
# with a warning, if the jars changed; `fetch` deletes the archives whenever it replaces them.

cds_args() {  # role process-name -> JVM options, one per line
    if [[ -s $CDS/$1.jsa ]]; then
        echo "-XX:SharedArchiveFile=$CDS/$1.jsa"
    else
        # No archive yet: this process records one when it exits (per process, as any of the
        # three nodes may be the one that exits cleanly).
        mkdir -p "$CDS"
        rm -f "$CDS/$2.jsa.dump"
        echo "-XX:ArchiveClassesAtExit=$CDS/$2.jsa.dump"
    fi
}

cds_keep() {  # role process-name clean(1|""): adopt the archive a cleanly stopped process wrote
    local dump=$CDS/$2.jsa.dump
    if [[ -n $3 && -s $dump && ! -s $CDS/$1.jsa ]]; then
        mv "$dump" "$CDS/$1.jsa"
        log "kept class-data archive $CDS/$1.jsa for faster starts"
    fi
    rm -f "$dump"   # a killed process leaves at best half an archive
}

# kafka-tool's archive, recorded once by a typical admin command against the running lab.
cds_train_tool() {
    [[ -s $CDS/tool.jsa ]] && return 0
    mkdir -p "$CDS"
    KAFKA_TOOL_OPTS="-XX:ArchiveClassesAtExit=$CDS/tool.jsa.dump" "$HERE/kafka-tool" \
        consumer-groups --bootstrap-server "$(bootstrap_servers)" --describe --all-groups \
        >"$LOGS/cds-tool.out" 2>&1 || { rm -f "$CDS/tool.jsa.dump"; return 0; }
    cds_keep tool tool 1 || rm -f "$CDS/tool.jsa.dump"
}

# ---------------------------------------------------------------------------------------------
# Processes. A process is ours when its pid file names a live pid whose command line contains
# the config file we gave it (guards against the pid having been reused by something else).

pid_of() {  # name marker -> pid on stdout, or failure
    local pidfile=$RUN/$1.pid pid
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2" || return 1
    echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start NAME MARKER JAVA-ARGS...: detached in its own session (a Ctrl-C or a process-group kill
# of the caller does not take the lab down); the pid written is the JVM's own (exec keeps it).
start_java() {
    local name=$1; shift
    rm -f "$RUN/$name.pid"
    # shellcheck disable=SC2016  # expanded by the inner bash: it writes its own pid, then becomes java
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$RUN/$name.pid" "$JAVA" "$@" \
        </dev/null >>"$LOGS/$name.out" 2>&1 &
    local i
    for i in $(seq 50); do [[ -s $RUN/$name.pid ]] && return 0; sleep 0.05; done
    die "$name did not start (see $LOGS/$name.out)"
}

start_broker() {
    local n=$1 conf=$CONF/broker-$1.properties
    if pid_of "broker-$n" "$conf" >/dev/null; then
        return 0  # running (or still starting): leave it alone
    fi
    log "starting node $n (broker 127.0.0.1:$(broker_port "$n"), controller :$(controller_port "$n"), rack ${RACKS[$n]})"
    local cds
    mapfile -t cds < <(cds_args broker "broker-$n")
    start_java "broker-$n" "${BROKER_HEAP[@]}" "${JVM_COMMON[@]}" "${cds[@]}" \
        "-Dlab.log.name=broker-$n" -cp "$LIBS/*" kafka.Kafka "$conf"
}

start_connect() {
    local conf=$CONF/connect-distributed.properties
    if pid_of connect "$conf" >/dev/null; then
        return 0
    fi
    log "starting Connect worker (REST http://127.0.0.1:$CONNECT_PORT)"
    local cds
    mapfile -t cds < <(cds_args connect connect)
    start_java connect "${CONNECT_HEAP[@]}" "${JVM_COMMON[@]}" "${cds[@]}" \
        -Dlab.log.name=connect -cp "$LIBS/*" org.apache.kafka.connect.cli.ConnectDistributed "$conf"
}

# Stopping: SIGTERM (clean shutdown), or SIGKILL for a simulated crash; SIGKILL after
# STOP_TIMEOUT for a process that does not exit. Only the pids from our pid files are signalled.

marker_of() {  # the config path a process was started with (see pid_of)
    case $1 in
        connect) echo "$CONF/connect-distributed.properties" ;;
        broker-*) echo "$CONF/$1.properties" ;;
    esac
}

running_nodes() {  # how many of the three nodes run
    local n count=0
    for n in "${NODES[@]}"; do
        pid_of "broker-$n" "$(marker_of "broker-$n")" >/dev/null && count=$((count + 1))
    done
    echo "$count"
}

# All named processes are signalled at once, then waited for together: the three nodes must
# shut down in parallel, because a broker's controlled shutdown needs the controller quorum
# (two of the three nodes). One node left alone while stopping has lost that quorum and would
# wait five minutes for it; it gets QUORUM_LOST_GRACE seconds to finish, then SIGKILL.
QUORUM_LOST_GRACE=${KAFKA_LAB_QUORUM_LOST_GRACE:-5}

# Past its controlled shutdown, a node no longer needs the quorum (it may still be writing its
# class-data archive, or waiting Kafka's 5 s for a new raft leader): let it finish.
broker_part_done() {  # broker-N
    local n=${1#broker-}
    tail -n 400 "$LOGS/$1.log" 2>/dev/null | grep -qF "[BrokerServer id=$n] shut down completed"
}

stop_many() {  # signal name...
    local sig=$1; shift
    local name pid names=() pids=() clean=()
    for name in "$@"; do
        pid=$(pid_of "$name" "$(marker_of "$name")") || { rm -f "$RUN/$name.pid"; continue; }
        log "stopping $name (pid $pid, SIG$sig)"
        kill "-$sig" "$pid" 2>/dev/null || true
        names+=("$name"); pids+=("$pid"); if [[ $sig == TERM ]]; then clean+=(1); else clean+=(""); fi
    done
    local deadline=$((SECONDS + STOP_TIMEOUT)) alone_since="" i left
    while :; do
        left=()
        for i in "${!pids[@]}"; do [[ -d /proc/${pids[$i]} ]] && left+=("$i"); done
        ((${#left[@]})) || break
        if ((${#left[@]} == 1)) && [[ ${names[${left[0]}]} == broker-* ]] &&
            (($(running_nodes) == 1)) && ! broker_part_done "${names[${left[0]}]}"; then
            alone_since=${alone_since:-$SECONDS}
        else
            alone_since=""
        fi
        for i in "${left[@]}"; do
            if ((SECONDS >= deadline)) ||
                { [[ -n $alone_since ]] && ((SECONDS - alone_since >= QUORUM_LOST_GRACE)); }; then
                log "${names[$i]} (pid ${pids[$i]}) did not exit$([[ -n $alone_since ]] &&
                    echo " (controller quorum lost)"): SIGKILL"
                kill -KILL "${pids[$i]}" 2>/dev/null || true
                clean[i]=""
            fi
        done
        sleep 0.1
    done
    for i in "${!pids[@]}"; do
        rm -f "$RUN/${names[$i]}.pid"
        cds_keep "${names[$i]%-[0-9]}" "${names[$i]}" "${clean[$i]}"
    done
}

# Until every running node reports every running node as a registered broker. Checks in short
# rounds so a node that died while starting fails the wait at once, with its log.
wait_brokers() {
    local t0=$1 deadline=$((SECONDS + BROKER_READY_TIMEOUT)) n addrs=() ids=()
    for n in "${NODES[@]}"; do
        if pid_of "broker-$n" "$CONF/broker-$n.properties" >/dev/null; then
            addrs+=("127.0.0.1:$(broker_port "$n")"); ids+=("$n")
        fi
    done
    ((${#ids[@]})) || die "no node is running"
    local a i
    a=$(IFS=,; echo "${addrs[*]}"); i=$(IFS=,; echo "${ids[*]}")
    while ! labkit wait-brokers "$a" "$i" 2 2>/dev/null; do
        for n in "${ids[@]}"; do
            pid_of "broker-$n" "$CONF/broker-$n.properties" >/dev/null ||
                die "node $n exited while starting; last log lines:
$(tail -n 30 "$LOGS/broker-$n.out" "$LOGS/broker-$n.log" 2>/dev/null)"
        done
        if ((SECONDS > deadline)); then
            labkit wait-brokers "$a" "$i" 0 || true
            die "brokers not ready after ${BROKER_READY_TIMEOUT}s (logs in $LOGS)"
        fi
    done
    log "brokers [$i] registered and seen by every node after $(since "$t0")s"
}

wait_connect() {
    local t0=$1 deadline=$((SECONDS + CONNECT_READY_TIMEOUT))
    local url=http://127.0.0.1:$CONNECT_PORT
    while ! labkit wait-http "$url/connector-plugins" 2 FileStreamSinkConnector 2>/dev/null; do
        pid_of connect "$CONF/connect-distributed.properties" >/dev/null ||
            die "Connect exited while starting; last log lines:
$(tail -n 30 "$LOGS/connect.out" "$LOGS/connect.log" 2>/dev/null)"
        ((SECONDS <= deadline)) || die "Connect REST not ready after ${CONNECT_READY_TIMEOUT}s"
    done
    # /connectors answers only once the worker has joined its group and read its config topic.
    labkit wait-http "$url/connectors" "$CONNECT_READY_TIMEOUT" ||
        die "Connect did not join its group (see $LOGS/connect.log)"
    log "Connect REST ready after $(since "$t0")s"
}

write_env() {
    local n
    {
        echo "KAFKA_BOOTSTRAP_SERVERS=$(bootstrap_servers)"
        for n in "${NODES[@]}"; do echo "KAFKA_BROKER_$n=127.0.0.1:$(broker_port "$n")"; done
        echo "KAFKA_CONNECT_URL=http://127.0.0.1:$CONNECT_PORT"
        echo "KAFKA_VERSION=$(kafka_version)"
        echo "KAFKA_CLASSPATH=$LIBS/*"
        echo "KAFKA_TOOL=$HERE/kafka-tool"
        # The secured listeners and what a client needs for them (KAFKA_LAB_*: never a name the
        # modules read from the environment, so PLAINTEXT runs stay PLAINTEXT).
        echo "KAFKA_SASL_SSL_BOOTSTRAP_SERVERS=$(bootstrap_servers SASL_SSL_PORT)"
        echo "KAFKA_MTLS_BOOTSTRAP_SERVERS=$(bootstrap_servers MTLS_PORT)"
        echo "KAFKA_LAB_CA_FILE=$TLS/ca.pem"
        echo "KAFKA_LAB_CLIENT_CERT=$TLS/client.pem"
        echo "KAFKA_LAB_CLIENT_KEY=$TLS/client.key"
        echo "KAFKA_LAB_ROGUE_CA_FILE=$TLS/rogue-ca.pem"
        echo "KAFKA_LAB_ROGUE_CLIENT_CERT=$TLS/rogue-client.pem"
        echo "KAFKA_LAB_ROGUE_CLIENT_KEY=$TLS/rogue-client.key"
        echo "KAFKA_LAB_SCRAM_USERNAME=streamops"
        echo "KAFKA_LAB_SCRAM_PASSWORD=$(cat "$TLS/streamops.password")"
        echo "KAFKA_LAB_NOACL_USERNAME=nobody"
        echo "KAFKA_LAB_NOACL_PASSWORD=$(cat "$TLS/nobody.password")"
    } >"$ENV_FILE.tmp"
    chmod 600 "$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------------------------------------
# Commands.

cmd_up() {
    local t0; t0=$(now)
    fetch
    ensure_state
    ensure_tls
    render_configs
    format_storage
    local n
    for n in "${NODES[@]}"; do start_broker "$n"; done
    # Once Connect's internal topics exist it only needs the brokers to answer, and its JVM start
    # overlaps theirs. The very first time it waits for all three brokers: it creates those
    # topics with RF 3 and gives up if fewer brokers are registered.
    local connect_early=false
    [[ -f $K/data/connect.ready ]] && connect_early=true
    $connect_early && start_connect
    wait_brokers "$t0"
    $connect_early || start_connect
    ensure_security
    # kafka-tool's class-data archive is recorded (once) while Connect gets ready.
    local train=""
    if [[ ! -s $CDS/tool.jsa ]]; then cds_train_tool & train=$!; fi
    wait_connect "$t0"
    touch "$K/data/connect.ready"
    write_env
    if [[ -n $train ]]; then wait "$train" || true; fi
    log "up in $(since "$t0")s; environment in $ENV_FILE:"
    sed -e 's/^/    /' -e 's/\(PASSWORD=\).*/\1(in the file)/' "$ENV_FILE" >&2
}

cmd_down() {
    local purge=false
    [[ ${1:-} == --purge ]] && purge=true
    if [[ -f $STATE ]]; then
        # shellcheck disable=SC1090
        source "$STATE"
    fi
    rm -f "$ENV_FILE"
    stop_many TERM connect  # first, so it does not log errors about vanished brokers
    stop_many TERM broker-1 broker-2 broker-3
    if $purge; then
        log "purging data, state, configs and logs (the jars stay)"
        rm -rf "$K/data" "$STATE" "$CONF" "$LOGS" "$RUN"  # data/ holds connect.ready too
    fi
}

check_node() {
    [[ ${1:-} =~ ^[123]$ ]] || die "node must be 1, 2 or 3"
}

cmd_stop_broker() {
    check_node "${1:-}"
    ensure_state
    local sig=TERM
    [[ ${2:-} == --kill ]] && sig=KILL  # a crash: no controlled shutdown
    stop_many "$sig" "broker-$1"
}

cmd_start_broker() {
    check_node "${1:-}"
    local t0; t0=$(now)
    fetch
    ensure_state
    ensure_tls
    render_configs
    format_storage
    start_broker "$1"
    wait_brokers "$t0"
    [[ -f $ENV_FILE ]] || write_env
}

cmd_status() {
    [[ -f $STATE ]] || { echo "kafka lab: not set up (no $STATE)"; return 3; }
    ensure_state
    local n pid rc=0 seen
    for n in "${NODES[@]}"; do
        if pid=$(pid_of "broker-$n" "$CONF/broker-$n.properties"); then
            seen=$(labkit brokers "127.0.0.1:$(broker_port "$n")" 2>/dev/null) || seen="(no answer)"
            printf 'node %s  rack %s  pid %-7s 127.0.0.1:%s  controller :%s  sees brokers: %s\n' \
                "$n" "${RACKS[$n]}" "$pid" "$(broker_port "$n")" "$(controller_port "$n")" "$seen"
        else
            printf 'node %s  rack %s  STOPPED        127.0.0.1:%s\n' "$n" "${RACKS[$n]}" \
                "$(broker_port "$n")"
            rc=3
        fi
    done
    if pid=$(pid_of connect "$CONF/connect-distributed.properties"); then
        if labkit wait-http "http://127.0.0.1:$CONNECT_PORT/connectors" 0 2>/dev/null; then
            printf 'connect        pid %-7s http://127.0.0.1:%s  REST ok\n' "$pid" "$CONNECT_PORT"
        else
            printf 'connect        pid %-7s http://127.0.0.1:%s  REST not answering\n' "$pid" \
                "$CONNECT_PORT"
            rc=3
        fi
    else
        echo "connect        STOPPED"
        rc=3
    fi
    echo "kafka $(kafka_version), cluster id $CLUSTER_ID, env file $ENV_FILE$([[ -f $ENV_FILE ]] || echo ' (missing)')"
    return $rc
}

cmd_selftest() {
    [[ -f $ENV_FILE ]] || die "the lab is not up ($ENV_FILE missing)"
    local py=$ROOT/.venv/bin/python
    [[ -x $py ]] || py=$PYTHON
    "$py" "$HERE/kafka/selftest.py" "$ENV_FILE"
}

usage() { sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

main() {
    local cmd=${1:-}
    shift || true
    case $cmd in
        fetch) fetch ;;
        up) cmd_up ;;
        down) cmd_down "$@" ;;
        stop-broker) cmd_stop_broker "$@" ;;
        start-broker) cmd_start_broker "$@" ;;
        status) cmd_status ;;
        selftest) cmd_selftest ;;
        -h | --help | help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
