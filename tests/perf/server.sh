# Sourced by run-all.sh and profile.sh: the server as the performance runs start it (the Release build with the demo
# data, plaintext HTTP/2 on $address, the perf API key with every scope, rate limits out of the way), its log in
# $out/server.log, and then waiting until it has started. Extra settings (durability) come as arguments; server_pid is
# set. Environment the caller exports (a perf map) reaches the server.

# start_server ADDRESS API_KEY_SHA256 [SETTING...]
start_server() {
  local address=$1 key_sha256=$2
  shift 2
  (cd src/Segmentation.Server/bin/Release/net10.0 && exec dotnet Segmentation.Server.dll --Kestrel:Endpoints:Grpc:Url="$address" \
    --Kestrel:Endpoints:Grpc:Protocols=Http2 --Segmentation:DemoData=true \
    --Segmentation:Security:AllowPlaintext=true \
    --Segmentation:Limits:StreamEventsPerSecond=10000000 --Segmentation:Limits:UnaryRequestsPerSecond=10000000 \
    --Segmentation:Security:ApiKeys:0:Name=perf --Segmentation:Security:ApiKeys:0:Sha256="$key_sha256" \
    --Segmentation:Security:ApiKeys:0:Scopes:0=decide --Segmentation:Security:ApiKeys:0:Scopes:1=ingest \
    --Segmentation:Security:ApiKeys:0:Scopes:2=admin "$@") > "$out/server.log" 2>&1 &
  server_pid=$!
}

# Waits up to a minute for the server started by start_server; exits the script when it stopped or did not start.
wait_for_server() {
  for _ in $(seq 1 120); do
    grep -q "Application started" "$out/server.log" && return 0
    kill -0 "$server_pid" 2>/dev/null || { cat "$out/server.log"; echo "server exited"; exit 1; }
    sleep 0.5
  done
  cat "$out/server.log"; echo "server did not start"; exit 1
}
