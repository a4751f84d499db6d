#!/usr/bin/env bash
# Issue 6 measuring instruments, end to end: builds Release, starts the real server on 127.0.0.1:5199,
# drives it with the repo's load generator (one unmeasured warm-up pass of every mode, then echo baseline,
# Decide cache hits, misses, a mix, and StreamEvents bulk ingestion (one event per message and batches); ratios to echo from the same run),
# optionally with h2load, stops the server, runs the BenchmarkDotNet suite, then a 100k-profile memory/scale
# run (the 1M-profile run takes ~5 min on 2 cores, so it is separate:
# dotnet run -c Release --project tests/Segmentation.ScaleTest -- --profiles 1000000).
#
#   bash tests/perf/run-all.sh                  full run, 3 s warm-up pass + ~10 s per load mode, BenchmarkDotNet short job of
#                                               the benchmarks the README's targets quote (< 10 min)
#   bash tests/perf/run-all.sh --all-benchmarks the same with every benchmark (about 10 minutes more: the experiment,
#                                               RFM and million-decision set-ups)
#   bash tests/perf/run-all.sh --smoke          ~1-2 s per piece, every benchmark in BenchmarkDotNet's dry job: proves nothing has rotted
#   bash tests/perf/run-all.sh --durable        the load modes that write, against a server with a data directory (every
#                                               acknowledged write fsynced; the default runs keep the store in memory only),
#                                               and nothing else (about 3 minutes)
#
# Environment: PERF_OUT (results directory, default BenchmarkDotNet.Artifacts/perf), PERF_PORT (5199),
# PERF_H2LOAD=0 to skip h2load even when it is installed (Debian: apt-get install -y nghttp2-client).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
source tests/perf/server.sh

smoke=0
all_benchmarks=0
durable=0
for arg in "$@"; do
  case "$arg" in
    --smoke) smoke=1 ;;
    --all-benchmarks) all_benchmarks=1 ;;
    --durable) durable=1 ;;
    *) echo "unknown option: $arg (--smoke, --all-benchmarks, --durable)" >&2; exit 2 ;;
  esac
done
port=${PERF_PORT:-5199}
address="http://127.0.0.1:$port"
out=${PERF_OUT:-$root/BenchmarkDotNet.Artifacts/perf}
mkdir -p "$out"

if ((smoke)); then
  duration=1; warmup=0.5; warmup_pass=0.5; h2_duration=1; bdn_job=(--job dry); scale=(--profiles 2000 --decides 1000 --breakdown 12); batch_size=500
else
  duration=10; warmup=2; warmup_pass=3; h2_duration=10; bdn_job=(--job short); scale=(--profiles 100000 --decides 100000 --breakdown 16); batch_size=10000
fi

# The benchmarks behind the README's performance targets; the smoke and --all-benchmarks run every one (each pattern
# is checked to name a benchmark in every mode, the smoke included, so a rename cannot drop one unnoticed).
target_benchmarks=('*DecisionBenchmark.ResolveWinnerOnMiss*' '*DecisionBenchmark.DecideOnMiss' '*DecisionBenchmark.DecideOnHit*'
  '*TraitHeavyBenchmark*' '*IngestionBenchmark*' '*MeasurementBenchmark.RecordImpression*'
  '*MeasurementBenchmark.Kpis30DaysAllSegments')
if ((smoke || all_benchmarks)); then
  bdn_filter=('*')
else
  bdn_filter=("${target_benchmarks[@]}")
fi

echo "== build (Release)"
dotnet build -c Release --nologo -v quiet src/Segmentation.Server/Segmentation.Server.csproj
dotnet build -c Release --nologo -v quiet tests/Segmentation.LoadTest/Segmentation.LoadTest.csproj
dotnet build -c Release --nologo -v quiet tests/Segmentation.Benchmarks/Segmentation.Benchmarks.csproj
dotnet build -c Release --nologo -v quiet tests/Segmentation.ScaleTest/Segmentation.ScaleTest.csproj

echo "== machine"
echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), .NET $(dotnet --version)"

echo "== server on $address"
# Started from its output directory so that its appsettings.json is the one read; HTTP/2 only (plaintext
# gRPC has no ALPN to choose a protocol) and the demo data, which the production defaults leave out.
# Plaintext on loopback, and one API key with every scope (the documented development key unless
# SEGMENTATION_API_KEY is set): every measured call pays the same authentication as in production.
# The per-key rate limits are raised far above what one machine can send: the harness measures the server,
# and the default limits (200,000 stream events and 100,000 unary calls per second per key) are reachable
# by stream-batch on a fast machine, which would then measure the limiter's RESOURCE_EXHAUSTED instead.
# Without --durable the server has no data directory: the store is in memory and nothing is fsynced, so the write modes
# (decide-miss, mixed, the stream modes) measure the service without its durability. --durable gives it a fresh one.
durability=()
modes=all
if ((durable)); then
  # Under the results directory, not /tmp: where /tmp is tmpfs an fsync does nothing and "durable" would measure memory.
  data_dir=$(mktemp -d "$out/data-XXXXXX")
  fs_type=$(stat -f -c %T "$data_dir")
  if [[ "$fs_type" == tmpfs || "$fs_type" == ramfs ]]; then
    echo "the data directory $data_dir is on $fs_type, where fsync writes nothing: set PERF_OUT to a directory on a disk" >&2; rm -rf "$data_dir"; exit 2
  fi
  durability=(--Segmentation:DataDirectory="$data_dir" --Segmentation:EncryptionKey="$(head -c 32 /dev/urandom | base64)") # PII encrypted at rest, as required
  modes=echo,decide-hit,decide-miss,echo-pair,decide-with-event,mixed,stream-ingest,echo-stream,stream-batch,decide-batch
fi
api_key=${SEGMENTATION_API_KEY:-dev-local-key-change-me}
api_key_sha256=$(printf %s "$api_key" | sha256sum | cut -d' ' -f1)
start_server "$address" "$api_key_sha256" "${durability[@]}"
stop_server() { kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true; if ((durable)); then rm -rf "$data_dir"; fi; }
trap stop_server EXIT
wait_for_server
grep -m1 "Demo data:" "$out/server.log" | sed 's/^ *//' || true

load=(dotnet tests/Segmentation.LoadTest/bin/Release/net10.0/Segmentation.LoadTest.dll --address "$address" --api-key "$api_key")

echo "== load generator: warm-up pass, then echo, decide-hit, decide-miss, echo-pair (its ceiling), decide-with-event (decide-miss in one call), decide-fresh, mixed (-c 16 connections, 160 in flight), stream-ingest (4 StreamEvents calls, 256 events in flight each, one per message), echo-stream (its ceiling: the same over EchoStream), stream-batch (stream-ingest's streams, 64 events per message), decide-batch (2 DecideBatch calls of $batch_size users in flight); server CPU per request from /proc"
((durable)) && echo "== --durable: modes $modes"
echo "== durability: $( ((durable)) && echo "on (data directory $data_dir on $fs_type: every acknowledged write fsynced)" || echo "off (no data directory: the store is in memory only)")"
"${load[@]}" --mode "$modes" --duration "$duration" --warmup "$warmup" --warmup-pass "$warmup_pass" --connections 16 --concurrency 160 --users 3000 \
  --streams 4 --window 256 --batch-size "$batch_size" --batch-calls 2 --server-pid "$server_pid" | tee "$out/load.txt"

if ((durable)); then
  echo "== --durable: the load modes only (no h2load, benchmarks or scale run)"
elif command -v h2load > /dev/null && [[ "${PERF_H2LOAD:-1}" != 0 ]]; then
  echo "== h2load -c 16 -m 10 (one fixed request body per RPC: Decide is always the same user, so cache hits)"
  # h2load counts any HTTP 200 as a success, and gRPC errors are HTTP 200 with grpc-status in the
  # trailers and no DATA. So each run is checked by DATA bytes per request: a successful unary
  # response carries 5 bytes of framing plus the message; an error carries none.
  mkdir -p "$out/h2load"
  "${load[@]}" --write-h2load-bodies "$out/h2load" | tee "$out/h2load/sizes.txt"
  read -r echo_bytes decide_bytes < <(sed -n 's/.*response message bytes: echo \([0-9]*\) decide \([0-9]*\).*/\1 \2/p' "$out/h2load/sizes.txt" | tail -1)
  for rpc in echo:segmentation.v1.DiagnosticsService/Echo:$echo_bytes decide:segmentation.v1.DecisionService/Decide:$decide_bytes; do
    IFS=: read -r name path bytes <<< "$rpc"
    h2=(h2load -c 16 -m 10 -t 1 -H 'content-type: application/grpc' -H 'te: trailers' -H "x-api-key: $api_key" -d "$out/h2load/$name.bin" "$address/$path")
    # A separate, discarded warm-up: h2load's --warm-up-time still counts warm-up DATA in its traffic line.
    ((smoke)) || "${h2[@]}" -D 2 > /dev/null 2>&1 || true
    "${h2[@]}" -D "$h2_duration" > "$out/h2load/$name.txt" 2>&1 || true
    rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' "$out/h2load/$name.txt")
    ok=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' "$out/h2load/$name.txt")
    data=$(sed -n 's/^traffic: .*(\([0-9]*\)) data.*/\1/p' "$out/h2load/$name.txt")
    # Decide responses vary by a few bytes (from_cache, ids); allow 10 %.
    verdict=$(awk -v d="${data:-0}" -v n="${ok:-0}" -v b="$bytes" 'BEGIN { if (n == 0) { print "NO SUCCESSES"; exit } per = d / n; printf "%.0f data bytes/request, expected %d: %s", per, b + 5, (per >= 0.9 * (b + 5) ? "real responses" : "GRPC ERRORS (no DATA)") }')
    grep -E "^(finished|requests|time for request)" "$out/h2load/$name.txt" | sed "s/^/  $name: /"
    echo "  $name: $rps req/s; $verdict"
    [[ "$verdict" == *"real responses" ]] || { echo "h2load $name: no real responses, the rate above is not a measurement"; exit 1; }
  done
else
  echo "== h2load not installed or disabled: skipped (apt-get install -y nghttp2-client)"
fi

# Clients that stop with calls in flight (every timed run ends that way) show up as aborted request streams.
# Counted per logged failure (an entry spans several lines, its exception's among them).
aborted=$(awk '/^(trce|dbug|info|warn|fail|crit):/ { n += inside && hit; inside = /^fail:/; hit = 0; next }
               /The request stream was aborted/ { hit = 1 }
               END { print n + (inside && hit) }' "$out/server.log")
failures=$(grep -c '^fail:' "$out/server.log" || true)
echo "== server log: $failures failures logged, of which $aborted aborted by clients at the end of timed runs"
if ((failures > aborted)); then
  grep -A3 '^fail:' "$out/server.log" | head -40
  echo "the server logged failures that no client caused (above): the measurements are not of a healthy server"; exit 1
fi
stop_server
trap - EXIT
((durable)) && exit 0

echo "== BenchmarkDotNet (${bdn_job[*]}; ${bdn_filter[*]})"
# Run from the project directory: BenchmarkDotNet looks for the .csproj from the working directory. Reports of an
# earlier run are removed first: with a filter, they would otherwise be printed beside this run's as if measured now.
rm -rf "$out/bdn"
for pattern in "${target_benchmarks[@]}"; do
  if [[ -z "$(dotnet "$root/tests/Segmentation.Benchmarks/bin/Release/net10.0/Segmentation.Benchmarks.dll" --list flat --filter "$pattern" | grep -F '.' || true)" ]]; then
    echo "no benchmark matches '$pattern' (renamed?): the targets' list in tests/perf/run-all.sh needs it"; exit 1
  fi
done
(cd "$root/tests/Segmentation.Benchmarks" && dotnet "$root/tests/Segmentation.Benchmarks/bin/Release/net10.0/Segmentation.Benchmarks.dll" \
  --filter "${bdn_filter[@]}" "${bdn_job[@]}" --artifacts "$out/bdn" --exporters github) > "$out/benchmarks.txt" 2>&1 \
  || { tail -50 "$out/benchmarks.txt"; echo "benchmarks failed"; exit 1; }
cat "$out"/bdn/results/*-report-github.md

echo "== memory/scale run (${scale[*]})"
dotnet tests/Segmentation.ScaleTest/bin/Release/net10.0/Segmentation.ScaleTest.dll "${scale[@]}" | tee "$out/scale.txt"
echo "== done; results in $out"
