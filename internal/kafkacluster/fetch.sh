#!/usr/bin/env bash
# Fetch the jars of the Apache Kafka broker named in pom.xml from Maven
# Central into the cache that internal/kafkacluster reads, and print the
# directory that holds them. A second run finds them there and only prints.
#
#   internal/kafkacluster/fetch.sh
#
# The cache is $KAPPA_KAFKA_CACHE, by default ~/.cache/kappa/kafka
# ($XDG_CACHE_HOME/kappa/kafka when that is set); the jars go to
# <cache>/kafka-<version>/libs. Needs mvn (Maven 3) and a JDK.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/pom.xml"
version="$(sed -n 's:.*<kafka\.version>\([^<]*\)</kafka\.version>.*:\1:p' "$pom" | head -n 1)"
if [ -z "$version" ]; then
  echo "fetch.sh: no <kafka.version> in $pom" >&2
  exit 1
fi
cache="${KAPPA_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kappa/kafka}"
dir="$cache/kafka-$version"

if [ ! -f "$dir/libs/kafka_2.13-$version.jar" ]; then
  if ! command -v mvn >/dev/null 2>&1; then
    echo "fetch.sh: mvn not found; install Maven 3 (apt-get install maven)" >&2
    exit 1
  fi
  echo "fetch.sh: fetching Kafka $version from Maven Central into $dir" >&2
  mkdir -p "$cache"
  # Copy into a fresh directory and rename it into place, so that an
  # interrupted or concurrent run never leaves a half-filled libs directory.
  tmp="$(mktemp -d "$cache/.kafka-$version.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  mvn -q -B -f "$pom" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp/libs" >&2
  if ! mv -T "$tmp" "$dir" 2>/dev/null && [ ! -f "$dir/libs/kafka_2.13-$version.jar" ]; then
    # A directory without the broker jar is in the way: replace it.
    rm -rf "$dir"
    mv -T "$tmp" "$dir"
  fi
fi
echo "$dir/libs"
