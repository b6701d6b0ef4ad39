"""The table of contents: the FunctionApp and one blueprint per surface. No logic, no I/O."""

import azure.functions as func

from blueprints import (
    accounts,
    bookings,
    calendars,
    connector,
    health,
    imports,
    openapi,
    readiness,
    spaces,
    sync,
    webhooks,
)

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(health.bp)
app.register_functions(openapi.bp)
app.register_functions(accounts.bp)
app.register_functions(calendars.bp)
app.register_functions(spaces.bp)
app.register_functions(imports.bp)
app.register_functions(connector.bp)
app.register_functions(webhooks.bp)
app.register_functions(bookings.bp)
app.register_functions(sync.bp)
app.register_functions(readiness.bp)
