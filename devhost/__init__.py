"""devhost: runs the unmodified v2 `function_app.py` locally the way the Azure Functions host does.

HTTP, timer and blob triggers, Easy Auth emulation, the admin "run now" API and the
static admin page; `devhost.stack` starts it with Azurite and m365sim. Nothing in the
product imports this package, and it is never deployed.
"""
