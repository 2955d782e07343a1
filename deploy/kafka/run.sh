#!/bin/sh
# Start a KRaft broker from KAFKA_* environment variables (apache/kafka style).
set -eu
conf=/opt/kafka/config/server.properties
: > "$conf"
env | sort | while IFS='=' read -r name value; do
  case "$name" in
    KAFKA_HEAP_OPTS|KAFKA_JVM_PERFORMANCE_OPTS|KAFKA_OPTS) continue ;;
    KAFKA_*) ;;
    *) continue ;;
  esac
  key=$(printf '%s' "${name#KAFKA_}" | tr 'A-Z' 'a-z' | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g')
  printf '%s=%s\n' "$key" "$value" >> "$conf"
done
cat > /opt/kafka/config/log4j2.properties <<'L'
status = error
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = OUT
logger.kafka.name = kafka
logger.kafka.level = warn
logger.apache.name = org.apache.kafka
logger.apache.level = warn
L
java_opts="${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m} -XX:+UseG1GC -Djava.awt.headless=true -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties"
logdir=$(sed -n 's/^log\.dirs=//p' "$conf" | cut -d, -f1)
if [ ! -f "${logdir:-/var/lib/kafka/data}/meta.properties" ]; then
  # shellcheck disable=SC2086
  java $java_opts -cp '/opt/kafka/libs/*' kafka.tools.StorageTool format \
      -t "${CLUSTER_ID:?CLUSTER_ID is required}" -c "$conf" --ignore-formatted
fi
echo "kafka: starting with $conf:" && sed 's/^/  /' "$conf"
# shellcheck disable=SC2086
exec java $java_opts -cp '/opt/kafka/libs/*' kafka.Kafka "$conf"
