"""m365sim: a simulated Microsoft 365 tenant (Entra ID admin consent and tokens, Microsoft Graph).

Owns the simulator used by local runs, tests and benchmarks. It must never be imported by
the product (`shared/`, `blueprints/`): the product reaches it only through configuration
(`LOGIN_BASE_URL`, `GRAPH_BASE_URL`, `CA_BUNDLE_PATH`).
"""
