#!/usr/bin/env bash
# Profiles the server under one load mode: where its CPU goes, by function (perf, with the runtime's perf map).
#   bash tests/perf/profile.sh MODE [--durable] [--syscalls]
# MODE is a Segmentation.LoadTest mode (stream-batch, stream-ingest, decide-batch, decide-miss, ...). The server starts as
# run-all.sh starts it (with a fresh data directory on a disk with --durable), the mode runs 3 s to warm up, then 10 s
# with `perf record -F 499 -g` over 6 s of its middle (or, with --syscalls, `strace -c -f` counting fsyncs, sends and
# futex waits instead). Prints the load generator's line, then the top functions and the split by code kind (JIT-compiled
# managed code, the runtime, the kernel). Needs perf (Debian: linux-perf) or strace; not run by CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/perf/server.sh
mode=${1:?usage: profile.sh MODE [--durable] [--syscalls]}
shift
durable=0; syscalls=0
for arg in "$@"; do
  case "$arg" in
    --durable) durable=1 ;;
    --syscalls) syscalls=1 ;;
    *) echo "unknown option: $arg (--durable, --syscalls)" >&2; exit 2 ;;
  esac
done
out=${PERF_OUT:-$PWD/BenchmarkDotNet.Artifacts/profile}
mkdir -p "$out"
out=$(cd "$out" && pwd) # absolute: the server runs from its own directory
port=${PERF_PORT:-5198}; address="http://127.0.0.1:$port"
api_key=dev-local-key-change-me
api_key_sha256=$(printf %s "$api_key" | sha256sum | cut -d' ' -f1)
dotnet build -c Release --nologo -v quiet src/Segmentation.Server/Segmentation.Server.csproj > /dev/null
dotnet build -c Release --nologo -v quiet tests/Segmentation.LoadTest/Segmentation.LoadTest.csproj > /dev/null

durability=()
if ((durable)); then
  data_dir=$(mktemp -d "$out/data-XXXXXX") # on a disk, not tmpfs: an fsync there writes nothing
  fs_type=$(stat -f -c %T "$data_dir")
  if [[ "$fs_type" == tmpfs || "$fs_type" == ramfs ]]; then
    echo "the data directory $data_dir is on $fs_type, where fsync writes nothing: set PERF_OUT to a directory on a disk" >&2; rm -rf "$data_dir"; exit 2
  fi
  durability=(--Segmentation:DataDirectory="$data_dir" --Segmentation:EncryptionKey="$(head -c 32 /dev/urandom | base64)")
fi
# The perf map names JIT-compiled methods; W^X off keeps their code at the addresses the map gives.
DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 start_server "$address" "$api_key_sha256" "${durability[@]}"
stop_server() { kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true; if ((durable)); then rm -rf "$data_dir"; fi; }
trap stop_server EXIT
wait_for_server

load=(dotnet tests/Segmentation.LoadTest/bin/Release/net10.0/Segmentation.LoadTest.dll --address "$address" --api-key "$api_key"
  --connections 16 --concurrency 160 --users 3000 --streams 4 --window 256 --batch-size 10000 --batch-calls 2)
"${load[@]}" --mode "$mode" --duration 3 --warmup 1 --warmup-pass 0 > /dev/null
if ((syscalls)); then
  (sleep 3; timeout 6 strace -c -f -e trace=fsync,fdatasync,pwrite64,pwritev,write,writev,sendmsg,futex -p "$server_pid" -o "$out/strace.txt" > /dev/null 2>&1) &
else
  (sleep 3; perf record -F 499 -g -p "$server_pid" -o "$out/perf.data" -- sleep 6 > /dev/null 2>&1) &
fi
recorder=$!
"${load[@]}" --mode "$mode" --duration 10 --warmup 2 --warmup-pass 0 --server-pid "$server_pid" | grep "^mode="
if ! wait "$recorder"; then
  echo "$( ((syscalls)) && echo strace || echo perf) failed (installed? perf needs kernel.perf_event_paranoid <= 1 or root)" >&2
  exit 1
fi
if ((syscalls)); then
  echo "== system calls of the server over 6 s"
  cat "$out/strace.txt"
else
  echo "== by kind of code"
  perf report -i "$out/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep "%" | head -6
  echo "== top functions (self time)"
  perf report -i "$out/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null | grep "%" | cut -c1-220 | head -40
fi
