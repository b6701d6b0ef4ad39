"""The simulator's WSGI application: routes Entra paths, Graph (`/v1.0`) and the control API
(`/_sim`) and turns results into HTTP responses.

Owns URL routing and the request log entries of Entra endpoints. It must never put Entra or Graph
behaviour here (that lives in entra.py and graph.py) and never serve the control API under a
Microsoft path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from m365sim import entra
from m365sim.control import ControlApi
from m365sim.graph import Call, GraphApi
from m365sim.notifier import Notifier
from m365sim.state import AppRegistration, SimState
from m365sim.tokens import TokenIssuer


class SimulatorApp:
    def __init__(self, state: SimState, issuer: TokenIssuer) -> None:
        self.state = state
        self.issuer = issuer
        self.notifier = Notifier(state)
        self.graph = GraphApi(state, issuer, self.notifier)
        self.control = ControlApi(state, self.notifier)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path
        if path == "/_sim" or path.startswith("/_sim/"):
            return self.control.handle(request)
        if path == "/v1.0" or path.startswith("/v1.0/"):
            return self._graph(request)
        if path == "/error":
            return entra.error_info_page(request)
        return self._entra(request)

    def _graph(self, request: Request) -> Response:
        call = Call(
            method=request.method,
            path=request.path[len("/v1.0"):].lstrip("/"),
            query=request.args,
            headers=request.headers,
            body=request.get_data(),
            base_url=f"https://{request.host}/v1.0",
        )
        result = self.graph.handle(call, request.headers.get("Authorization", ""))
        if result.body is None:
            return Response(status=result.status, headers=result.headers)
        return Response(json.dumps(result.body), status=result.status, headers=result.headers,
                        content_type="application/json; odata.metadata=minimal; charset=utf-8")

    def _entra(self, request: Request) -> Response:
        segments = [s for s in request.path.split("/") if s]
        entry = self.state.record_request(request.method, request.path, None, "entra")
        response, tenant_id = self._entra_route(request, segments)
        entry["tenant"] = tenant_id
        self.state.record_answer(entry, response.status_code)
        return response

    def _entra_route(self, request: Request, segments: list[str]) -> tuple[Response, str | None]:
        if not segments:
            return Response("m365sim", content_type="text/plain"), None
        tenant_name, rest = segments[0], [s.lower() for s in segments[1:]]
        known = self.state.tenant_by_name(tenant_name)
        tenant_id = known.id if known else None
        if rest == ["v2.0", ".well-known", "openid-configuration"] and request.method == "GET":
            return entra.openid_configuration(self.state, request, tenant_name), tenant_id
        if rest in (["discovery", "v2.0", "keys"], ["discovery", "keys"]) and request.method == "GET":
            return entra.jwks(self.issuer), tenant_id
        if rest == ["oauth2", "v2.0", "token"] and request.method == "POST":
            return entra.token(self.state, self.issuer, request, tenant_name)
        if rest == ["v2.0", "adminconsent"] and request.method in ("GET", "POST"):
            return entra.admin_consent(self.state, request, tenant_name)
        return Response(json.dumps({"error": "not_found", "error_description": f"m365sim has no {request.path}"}),
                        status=404, content_type="application/json"), tenant_id


def build_app(app_registration: AppRegistration, fixture_path: Any, issuer: TokenIssuer) -> SimulatorApp:
    return SimulatorApp(SimState(app_registration, fixture_path), issuer)
