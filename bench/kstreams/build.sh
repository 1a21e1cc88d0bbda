#!/usr/bin/env bash
# Builds target/kstreams-bench.jar, the Kafka Streams peer of the Go harness
# (one jar with every dependency). Needs a JDK 17 or newer and Maven; the
# harness runs it as `java -cp target/kstreams-bench.jar dev.kappa.bench.KStreamsBench`.
set -euo pipefail
cd "$(dirname "$0")"
mvn -q -B package -DskipTests
ls -l target/kstreams-bench.jar
