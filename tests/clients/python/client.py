"""End-to-end client in Python: generates the client code from the public protos with grpc_tools
(Debian's python3-grpc-tools), calls the real server with grpcio (python3-grpcio), and prints one
JSON object with what it saw.

Usage: python3 client.py ADDRESS USER_ID API_KEY GOOGLE_PROTOS_DIR
GOOGLE_PROTOS_DIR holds google/rpc/status.proto and error_details.proto (the Google.Api.CommonProtos
NuGet package's content/protos, which the .NET build restores); google/api/annotations.proto comes
from the same place.
"""
import json
import os
import pathlib
import re
import sys
import tempfile
import time
import uuid

# Debian's grpc-tools embeds protoc 3.5, whose generated code needs the pure-Python protobuf runtime.
os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

import grpc  # noqa: E402
from grpc_tools import protoc  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
PROTOS = HERE.parent.parent.parent / "protos"
CONTRACT = ["segmentation/v1/types.proto", "segmentation/v1/decision_service.proto", "segmentation/v1/profile_service.proto"]


def generate(google_protos: pathlib.Path) -> pathlib.Path:
    out = pathlib.Path(tempfile.mkdtemp(prefix="seg-python-client-"))
    shim = out / "shim"
    (shim / "google" / "rpc").mkdir(parents=True)
    (shim / "google" / "api").mkdir(parents=True)
    for name in ("status.proto", "error_details.proto"):
        text = (google_protos / "google" / "rpc" / name).read_text()
        # protoc 3.5 predates proto3 'optional'; dropping the label keeps the wire format.
        (shim / "google" / "rpc" / name).write_text(re.sub(r"^(\s*)optional ", r"\1", text, flags=re.M))
    for name in ("annotations.proto", "http.proto"):
        (shim / "google" / "api" / name).write_text((google_protos / "google" / "api" / name).read_text())
    wkt = pathlib.Path(protoc.__file__).parent / "_proto"
    includes = [f"-I{PROTOS}", f"-I{shim}"] + ([f"-I{wkt}"] if wkt.exists() else ["-I/usr/include"])
    files = CONTRACT + ["google/rpc/status.proto", "google/rpc/error_details.proto", "google/api/annotations.proto", "google/api/http.proto"]
    code = protoc.main(["protoc", *includes, f"--python_out={out}", f"--grpc_python_out={out}", *files])
    if code != 0:
        raise SystemExit(f"protoc failed ({code})")
    return out


def main() -> None:
    address, user_id, api_key, google_protos = sys.argv[1], sys.argv[2], sys.argv[3], pathlib.Path(sys.argv[4])
    sys.path.insert(0, str(generate(google_protos)))
    from segmentation.v1 import decision_service_pb2 as decisions, decision_service_pb2_grpc as decisions_grpc  # noqa: E402
    from segmentation.v1 import profile_service_pb2 as profiles, profile_service_pb2_grpc as profiles_grpc  # noqa: E402
    from google.rpc import status_pb2, error_details_pb2  # noqa: E402

    metadata = [("x-api-key", api_key)]
    channel = grpc.insecure_channel(address)
    decide = decisions_grpc.DecisionServiceStub(channel)
    profile = profiles_grpc.ProfileServiceStub(channel)
    seen = {}

    reply = decide.Decide(decisions.DecideRequest(user_id=user_id, context=decisions.RequestContext(device="mobile", country="GB", page_type="home")), metadata=metadata, timeout=30)
    seen["decision"] = {
        "segment": reply.decision.segment.id,
        "offer": reply.decision.offer.text,
        "matched": [f"{m.segment.id}:{decisions.MatchStatus.Name(m.status)}" for m in reply.decision.matched_segments],
    }

    event = profiles.Event(event_id="py-" + uuid.uuid4().hex, type="page_view", user_id="python-user")
    event.timestamp.FromSeconds(int(time.time()) - 1)
    event.context.source, event.context.device, event.context.session_id, event.context.page_type = "web", "desktop", "py-session", "home"
    tracked = profile.TrackEvent(profiles.TrackEventRequest(event=event), metadata=metadata, timeout=30)
    seen["track"] = {"duplicate": tracked.duplicate, "profileVersion": int(tracked.profile_version)}

    # The page view sent with the Decide itself (one round trip), naming no user: recorded for the request's.
    view = profiles.Event(event_id="py-view-" + uuid.uuid4().hex, type="page_view")
    view.timestamp.FromSeconds(int(time.time()) - 1)
    view.context.source, view.context.device, view.context.session_id, view.context.page_type = "web", "desktop", "py-session", "home"
    with_events = decide.Decide(decisions.DecideRequest(user_id="python-user", events=[view]), metadata=metadata, timeout=30)
    seen["decideWithEvents"] = [(profiles.EventStatus.Name(r.status), r.user_id) for r in with_events.event_results]

    batch = decide.DecideBatch(decisions.DecideBatchRequest(user_ids=[user_id, "python-user", "nobody-known"]), metadata=metadata, timeout=30)
    seen["batch"] = [item.user_id for item in batch]

    # An invalid event: INVALID_ARGUMENT with google.rpc.BadRequest field violations in the rich status.
    try:
        profile.TrackEvent(profiles.TrackEventRequest(event=profiles.Event(event_id="py-bad", type="page_view", user_id="python-user")), metadata=metadata, timeout=30)
        seen["invalid"] = {"code": "OK"}
    except grpc.RpcError as error:
        details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
        violations = []
        if details:
            status = status_pb2.Status.FromString(details)
            for any_detail in status.details:
                if any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    any_detail.Unpack(bad)
                    violations += [v.field for v in bad.field_violations]
        seen["invalid"] = {"code": error.code().name, "violations": violations}

    print(json.dumps(seen))


if __name__ == "__main__":
    main()
