"""The table of contents: the FunctionApp and one blueprint per surface. No logic, no I/O."""

import azure.functions as func

from blueprints import accounts, calendars, health

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(health.bp)
app.register_functions(accounts.bp)
app.register_functions(calendars.bp)
