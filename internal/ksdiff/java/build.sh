#!/usr/bin/env bash
# Builds target/ksdiff.jar, the Kafka Streams side of the differential test
# in internal/ksdiff (one jar with every dependency, Kafka Streams 4.4.0 from
# Maven Central). Needs a JDK 17 or newer and Maven 3:
#
#   internal/ksdiff/java/build.sh
#   go test ./internal/ksdiff/ -v -count=1
set -euo pipefail
cd "$(dirname "$0")"
mvn -q -B package -DskipTests
ls -l target/ksdiff.jar
