#!/bin/sh
# Same name and use as in the Kafka distribution: kafka-broker-api-versions.sh --bootstrap-server H:P
exec java -Xmx128m -XX:TieredStopAtLevel=1 -Dlog4j2.level=error -cp '/opt/kafka/libs/*' \
    org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
