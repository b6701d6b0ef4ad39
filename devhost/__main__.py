"""`python -m devhost --app function_app:app --port 7071`: serve the app until Ctrl-C or SIGTERM.

Owns the command line, logging set-up and the threaded HTTP server's lifecycle.
Settings come from the process environment, as the real host's app settings do.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from werkzeug.serving import make_server

from devhost.functions import StartupError, configure_logging
from devhost.server import DevHost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--web-dir", type=Path, default=Path("web"), help="static files served at /")
    parser.add_argument("--data-dir", type=Path, default=Path(".devhost"), help="devhost's own state (session key)")
    arguments = parser.parse_args(argv)

    configure_logging()

    try:
        host = DevHost(arguments.app, web_dir=arguments.web_dir, data_dir=arguments.data_dir)
        host.start_background()
        server = make_server(arguments.host, arguments.port, host, threaded=True)
    except (StartupError, OSError) as error:
        logging.getLogger("devhost").error("devhost cannot start: %s", error)
        return 2

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return, so it must not run on the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.getLogger("devhost").info("Listening on http://%s:%d (functions under /%s)", arguments.host,
                                      server.server_port, host.config.route_prefix)
    try:
        server.serve_forever()
    finally:
        host.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
