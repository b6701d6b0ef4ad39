"""The devhost: HTTP triggers, Easy Auth emulation, the admin API and the static admin page.

Owns the WSGI application that stands in for the Functions host's front end:
- every request: a `Host` that is not loopback or PUBLIC_BASE_URL's host is refused first (see `devhost.guard`);
- `/<routePrefix>/<route>`: HTTP triggers, called with a real `azure.functions.HttpRequest`;
  the handler's `HttpResponse` goes back as it is; an exception is a bare 500 (trace in the log);
- `/.auth/...`: the dev sign-in (see `devhost.easyauth`), refusing cross-site posts; every client-sent
  `x-ms-client-principal*` header is dropped and, for a signed-in caller, the platform's are injected;
- `/admin/...`: the host's admin API (`POST /admin/functions/{name}` runs a function now, `{"input": ...}`
  being a blob path or a queue message's text), loopback callers only, never from another site's page;
- everything else: files of the web directory, with strict security headers.
It also starts the timer schedulers, blob watchers and queue listeners. It never changes the app's code or state.
"""

from __future__ import annotations

import html
import json
import logging
import mimetypes
import os
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import azure.functions as func
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join
from werkzeug.utils import send_file
from werkzeug.wrappers import Request, Response

from devhost.blobs import BlobWatcher
from devhost.easyauth import (
    COOKIE_NAME,
    LOGIN_PAGE,
    PRINCIPAL_HEADER_PREFIX,
    SESSION_SECONDS,
    Session,
    SessionSigner,
    parse_roles,
    safe_redirect,
)
from devhost.functions import (
    FunctionSpec,
    Invoker,
    Outcome,
    StartupError,
    is_disabled,
    load_app,
    read_functions,
    read_host_json,
)
from devhost.guard import RequestGuard
from devhost.hoststorage import HostStorage, connection_string, host_id
from devhost.queues import QueueListener
from devhost.routes import RouteTable
from devhost.timers import TimerScheduler
from devhost.workers import WorkerPool, process_count

log = logging.getLogger("devhost")

# Browsers must run only the page's own files: no inline script, no framing, no referrer leaks.
STATIC_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/css", ".css")
mimetypes.add_type("image/svg+xml", ".svg")
mimetypes.add_type("text/csv", ".csv")
mimetypes.add_type("application/json", ".json")


class DevHost:
    def __init__(self, app_spec: str, *, web_dir: Path | None, data_dir: Path,
                 environ: Mapping[str, str] | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        app, app_directory = load_app(app_spec)
        self.config = read_host_json(app_directory)
        indexed = read_functions(app, app_directory, self.environ)
        for spec in indexed:
            if is_disabled(spec.name, self.environ):
                log.info("Function %s is disabled (AzureWebJobs.%s.Disabled)", spec.name, spec.name)
        self.functions = {spec.name.lower(): spec for spec in indexed if not is_disabled(spec.name, self.environ)}
        self.web_dir = web_dir.resolve() if web_dir is not None and web_dir.is_dir() else None
        self.signer = SessionSigner.from_data_dir(data_dir)
        self.guard = RequestGuard(self.environ.get("PUBLIC_BASE_URL"))
        count = process_count(self.environ)
        self.workers = WorkerPool(app_spec, count) if count > 1 else None
        self.invoker = Invoker(self.config.function_timeout_seconds, self.workers)
        self.stop = threading.Event()
        self.blob_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="blob")
        self.host_storage = HostStorage(connection_string(self.environ, None), host_id(self.environ))
        self.routes: RouteTable[FunctionSpec] = RouteTable()
        self.timers: dict[str, TimerScheduler] = {}
        self.blob_watchers: dict[str, BlobWatcher] = {}
        self.queue_listeners: dict[str, QueueListener] = {}
        for key, spec in self.functions.items():
            if spec.kind == "http":
                route = spec.trigger.get("route") or spec.name
                self.routes.add(str(route), spec.trigger.get("methods") or [], spec)
            elif spec.kind == "timer":
                self.timers[key] = TimerScheduler(spec, self.host_storage, self.invoker, self.stop)
            elif spec.kind == "queue":
                self.queue_listeners[key] = QueueListener(spec, self.environ, self.config, self.invoker, self.stop)
            else:
                self.blob_watchers[key] = BlobWatcher(spec, self.environ, self.host_storage, self.invoker,
                                                      self.blob_executor, self.stop)

    # Lifecycle

    def start_background(self) -> None:
        try:
            self.host_storage.ensure_created()
        except Exception as error:  # noqa: BLE001 - say which setting points where
            raise StartupError(f"AzureWebJobsStorage is not reachable: {type(error).__name__}: {error}") from None
        workers = [*self.timers.items(), *self.blob_watchers.items(), *self.queue_listeners.items()]
        for name, worker in workers:
            threading.Thread(target=worker.run, name=f"trigger-{name}", daemon=True).start()
        for spec in self.functions.values():
            detail = (spec.trigger.get("route") or spec.name) if spec.kind == "http" else (
                spec.trigger.get("schedule") or spec.trigger.get("path") or spec.trigger.get("queueName"))
            log.info("Function %s: %s trigger (%s)", spec.name, spec.kind, detail)

    def shutdown(self) -> None:
        self.stop.set()
        self.blob_executor.shutdown(wait=False, cancel_futures=True)
        for listener in self.queue_listeners.values():
            listener.shutdown()
        if self.workers is not None:
            self.workers.close()

    # WSGI

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        problem = self.guard.host_problem(request.headers.get("Host"))
        try:
            response = (Response(problem, status=403, mimetype="text/plain", headers={"Cache-Control": "no-store"})
                        if problem else self.dispatch(request))
        except Exception:  # noqa: BLE001 - never a trace to the client
            log.exception("devhost failed on %s %s", request.method, request.path)
            response = Response(status=500)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/.auth/"):
            return self.auth(request)
        if path == "/admin" or path.startswith("/admin/"):
            return self.admin(request)
        prefix = f"/{self.config.route_prefix}" if self.config.route_prefix else ""
        raw_path = (request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or path).split("?")[0]
        if prefix and (raw_path.lower() == prefix.lower() or raw_path.lower().startswith(prefix.lower() + "/")):
            return self.http_trigger(request, raw_path[len(prefix):])
        if not prefix:
            response = self.http_trigger(request, raw_path, fall_through=True)
            if response is not None:
                return response
        return self.static(request)

    # HTTP triggers

    def session(self, request: Request) -> Session | None:
        return self.signer.read(request.cookies.get(COOKIE_NAME))

    def http_trigger(self, request: Request, route_path: str, fall_through: bool = False) -> Response | None:
        found = self.routes.resolve(request.method, route_path)
        if found is None:
            return None if fall_through else Response(status=404)
        if isinstance(found, set):
            return Response(status=405, headers={"Allow": ", ".join(sorted(found))})
        spec, route_params = found
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            if name.lower().startswith(PRINCIPAL_HEADER_PREFIX):
                continue  # the platform strips client-sent principals; so do we
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        session = self.session(request)
        if session is not None:
            headers.update(session.principal_headers())
        http_request = func.HttpRequest(
            method=request.method, url=request.url, headers=headers, params=request.args.to_dict(),
            route_params=route_params, body=request.get_data(),
        )
        outcome = self.invoker.invoke(spec, http_request, reason=f"{request.method} {request.path}")
        if not outcome.succeeded:
            return Response(status=500)
        return to_werkzeug(outcome.result)

    def cross_site_problem(self, request: Request) -> str | None:
        return self.guard.cross_site_problem(origin=request.headers.get("Origin"),
                                             fetch_site=request.headers.get("Sec-Fetch-Site"),
                                             scheme=request.scheme, host_header=request.headers.get("Host"))

    # Easy Auth

    def auth(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path == "/.auth/login/dev" and request.method == "GET":
            target = safe_redirect(request.args.get("post_login_redirect_uri"))
            return page(LOGIN_PAGE.format(redirect=html.escape(target)))
        if path == "/.auth/login/dev" and request.method == "POST":
            problem = self.cross_site_problem(request)
            if problem:  # login CSRF: another site's form must not sign the developer in as someone else
                return page(f"<p>{html.escape(problem)}. <a href=\"/.auth/login/dev\">Sign in here</a></p>", 403)
            user = (request.form.get("user") or "").strip()
            if not user:
                return page("<p>Give a user name. <a href=\"/.auth/login/dev\">Back</a></p>", 400)
            roles = parse_roles(request.form.getlist("roles"))
            response = redirect(safe_redirect(request.form.get("post_login_redirect_uri")
                                              or request.args.get("post_login_redirect_uri")))
            response.set_cookie(COOKIE_NAME, self.signer.issue(user, roles), max_age=SESSION_SECONDS, path="/",
                                httponly=True, samesite="Lax")
            return response
        if path == "/.auth/me" and request.method == "GET":
            session = self.session(request)
            return json_response(session.me() if session is not None else [])
        if path == "/.auth/logout":
            response = redirect(safe_redirect(request.args.get("post_logout_redirect_uri")))
            response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="Lax")
            return response
        return Response(status=404)

    # Admin API

    def admin(self, request: Request) -> Response:
        if request.remote_addr not in LOOPBACK:
            return json_response({"error": "the admin API answers loopback callers only"}, 403)
        problem = self.cross_site_problem(request)
        if problem:
            return json_response({"error": f"the admin API is not for web pages: {problem}"}, 403)
        if request.path == "/admin/host/status" and request.method == "GET":
            workers = self.workers.pids() if self.workers is not None else [os.getpid()]
            return json_response({"state": "Running", "id": self.host_storage.host_id,
                                  "functions": sorted(spec.name for spec in self.functions.values()),
                                  "workerProcesses": workers})
        parts = request.path.strip("/").split("/")
        if len(parts) != 3 or parts[1] != "functions":
            return Response(status=404)
        if request.method != "POST":
            return Response(status=405, headers={"Allow": "POST"})
        key = parts[2].lower()
        spec = self.functions.get(key)
        if spec is None:
            return json_response({"error": f"no function named {parts[2]!r}"}, 404)
        if spec.kind == "http":
            return json_response({"error": f"{spec.name} is an HTTP function: call its route"}, 400)
        try:
            body = json.loads(request.get_data() or b"{}")
        except ValueError:
            return json_response({"error": "the body must be JSON like {\"input\": \"...\"}"}, 400)
        text = str(body.get("input") or "") if isinstance(body, dict) else ""

        def run() -> Outcome:
            if spec.kind == "timer":
                return self.timers[key].fire_now()
            if spec.kind == "queue":
                return self.queue_listeners[key].invoke_text(text)
            return self.blob_watchers[key].invoke_path(text)

        if spec.kind == "blob" and not text:
            return json_response({"error": "give the blob path as input: container/blob"}, 400)
        if request.args.get("wait", "").lower() == "true":
            try:
                outcome = run()
            except Exception as error:  # noqa: BLE001 - e.g. the blob does not exist
                return json_response({"error": f"{type(error).__name__}: {error}"}, 400)
            return json_response(outcome.as_json())
        threading.Thread(target=run, name=f"admin-{spec.name}", daemon=True).start()
        return Response(status=202)

    # Static files

    def static(self, request: Request) -> Response:
        if self.web_dir is None or request.method not in ("GET", "HEAD"):
            return Response(status=404 if request.method in ("GET", "HEAD") else 405,
                            headers=STATIC_SECURITY_HEADERS)
        relative = request.path.lstrip("/")
        target = safe_join(str(self.web_dir), relative) if relative else str(self.web_dir)
        if target is not None and os.path.isdir(target):
            target = os.path.join(target, "index.html")
        if target is None or not os.path.isfile(target):
            return Response("Not found", status=404, mimetype="text/plain", headers=STATIC_SECURITY_HEADERS)
        try:
            response = send_file(target, request.environ, max_age=0)
        except NotFound:
            return Response("Not found", status=404, mimetype="text/plain", headers=STATIC_SECURITY_HEADERS)
        response.headers.update(STATIC_SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-cache"
        return response


def to_werkzeug(result: Any) -> Response:
    """The function's return value as the host would send it (see azure.functions.http.HttpResponseConverter)."""
    if result is None:
        return Response(status=204)
    if isinstance(result, str):
        return Response(result, status=200, content_type="text/plain; charset=utf-8")
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"an HTTP function returned {type(result).__name__}, not an HttpResponse")
    response = Response(result.get_body() or b"", status=int(result.status_code))
    response.headers.clear()
    for name, value in result.headers.items():
        response.headers.add(name, value)
    if "content-type" not in result.headers:
        mimetype = result.mimetype
        response.headers["Content-Type"] = (
            f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype)
    return response


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json",
                    headers={"Cache-Control": "no-store"})


def page(markup: str, status: int = 200) -> Response:
    return Response(markup, status=status, content_type="text/html; charset=utf-8",
                    headers={**STATIC_SECURITY_HEADERS, "Cache-Control": "no-store"})


def redirect(location: str) -> Response:
    return Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})
