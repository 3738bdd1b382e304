#!/usr/bin/env bash
# Start N sagas workers on one configuration and stop them all together (Ctrl-C or SIGTERM).
# Usage: engine/run-workers.sh N [CONFIG]     e.g. engine/run-workers.sh 4 engine/postgres.toml
set -euo pipefail
count=${1:?usage: $0 N [CONFIG]}
config=${2:-"$(dirname "$0")/postgres.toml"}
sagas=${SAGAS:-sagas}
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' INT TERM
for _ in $(seq "$count"); do
  "$sagas" worker --config "$config" &
  pids+=("$!")
done
wait
