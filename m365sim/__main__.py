"""Command line: `python -m m365sim --host 127.0.0.1 --port PORT --state-dir DIR --client-id GUID
--redirect-uri URI [--redirect-uri URI ...] [--fixture PATH]`, client secret in M365SIM_CLIENT_SECRET.

Owns process start-up and shutdown: certificates first (`ca.pem` is written before listening),
then an HTTPS-only threaded server until SIGTERM/SIGINT. It must never serve plain HTTP.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import ssl
import sys
import threading
import uuid
from pathlib import Path
from types import FrameType

from werkzeug.serving import make_server

from m365sim.app import SimulatorApp
from m365sim.certs import ensure_certificates, load_or_create_signing_key
from m365sim.state import DEFAULT_FIXTURE, AppRegistration, SimState
from m365sim.tokens import TokenIssuer


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m m365sim", description="Simulated Microsoft 365 tenant.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port (printed on start)")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--redirect-uri", action="append", required=True, dest="redirect_uris")
    parser.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE)
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    secret = os.environ.get("M365SIM_CLIENT_SECRET", "")
    if not secret:
        print("m365sim: M365SIM_CLIENT_SECRET must be set to the app's client secret", file=sys.stderr)
        return 2
    try:
        client_id = str(uuid.UUID(args.client_id))
    except ValueError:
        print("m365sim: --client-id must be a GUID", file=sys.stderr)
        return 2
    fixture = json.loads(args.fixture.read_text(encoding="utf-8"))
    app_spec = fixture.get("app", {})
    registration = AppRegistration(
        client_id=client_id,
        client_secret=secret,
        redirect_uris=tuple(args.redirect_uris),
        display_name=app_spec.get("displayName", "Room Calendar Connector"),
        required_permissions=tuple(app_spec.get("requiredPermissions", [])),
    )
    logging.basicConfig(level=logging.INFO, format="m365sim %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.WARNING)

    paths = ensure_certificates(args.state_dir)
    issuer = TokenIssuer(load_or_create_signing_key(args.state_dir))
    state = SimState(registration, args.fixture)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_cert_chain(paths.server_cert, paths.server_key)

    server = make_server(args.host, args.port, SimulatorApp(state, issuer), threaded=True, ssl_context=tls)
    server.daemon_threads = True

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return, so it must run on another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"m365sim listening on https://{host}:{server.server_port} (CA {paths.ca_cert})", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
