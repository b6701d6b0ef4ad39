"""Command line: `python -m m365sim --host 127.0.0.1 --port PORT --state-dir DIR --client-id GUID
--redirect-uri URI [--redirect-uri URI ...] [--fixture PATH]`, client secret in M365SIM_CLIENT_SECRET.

Owns process start-up and shutdown: certificates first (`ca.pem` is written before listening),
then an HTTPS-only threaded server until SIGTERM/SIGINT. It must never serve plain HTTP.

The server is cheroot's WSGI server (HTTP/1.1 with keep-alive, TLS through the standard `ssl`
module), because Graph keeps connections open between requests: a client's pool reuses one TLS
connection, as it does against graph.microsoft.com, instead of a handshake per request.
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
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cheroot.ssl.builtin import BuiltinSSLAdapter
from cheroot.wsgi import Server

from m365sim.app import SimulatorApp
from m365sim.certs import ensure_certificates, load_or_create_signing_key
from m365sim.state import DEFAULT_FIXTURE, AppRegistration, SimState
from m365sim.tokens import TokenIssuer

# Worker threads: a request holds one while it runs (including the `latency_ms` sleep); idle
# keep-alive connections do not (cheroot parks them in a selector). The connector keeps ~30
# requests in flight per tenant and benchmarks run several tenants at once.
WORKER_THREADS = 128
# Idle keep-alive connections are closed after this long (also the per-request socket timeout).
IDLE_TIMEOUT_SECONDS = 60
# Idle keep-alive connections kept open at once (cheroot's default of 10 would close the rest).
KEEP_ALIVE_LIMIT = 1024
LISTEN_BACKLOG = 128
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}

_access_log = logging.getLogger("m365sim.access")


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
    _access_log.setLevel(logging.INFO if args.verbose else logging.WARNING)

    paths = ensure_certificates(args.state_dir)
    issuer = TokenIssuer(load_or_create_signing_key(args.state_dir))
    state = SimState(registration, args.fixture, consent_file=Path(args.state_dir) / "consents.json")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_cert_chain(paths.server_cert, paths.server_key)

    adapter = BuiltinSSLAdapter(str(paths.server_cert), str(paths.server_key))
    adapter.context = tls
    server = Server((args.host, args.port), _logged(SimulatorApp(state, issuer)), numthreads=WORKER_THREADS,
                    request_queue_size=LISTEN_BACKLOG, timeout=IDLE_TIMEOUT_SECONDS, server_name="m365sim")
    server.ssl_adapter = adapter
    server.keep_alive_conn_limit = KEEP_ALIVE_LIMIT

    # The stop signals are blocked in every thread (the mask is inherited by threads started
    # after this) and taken synchronously by the main thread with sigwait, so shutdown never
    # runs inside a signal handler that interrupted the server's own loop.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    server.prepare()  # binds: with --port 0 the kernel picks the port, read back from bind_addr
    bound_port = server.bind_addr[1]
    serving = threading.Thread(target=server.serve, name="m365sim-serve")
    serving.start()
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"m365sim listening on https://{host}:{bound_port} (CA {paths.ca_cert})", flush=True)
    try:
        signal.sigwait(STOP_SIGNALS)
    finally:
        server.stop()
        serving.join()
    return 0


def _logged(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """The WSGI app, logging `METHOD path status ms` per request when --verbose."""

    def logged(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not _access_log.isEnabledFor(logging.INFO):
            return app(environ, start_response)
        started = time.monotonic()

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            _access_log.info("%s %s %s %d ms", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"),
                             status.split(" ", 1)[0], (time.monotonic() - started) * 1000)
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return logged


if __name__ == "__main__":
    sys.exit(main())
