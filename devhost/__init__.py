"""devhost: runs the unmodified v2 `function_app.py` locally the way the Azure Functions host does.

HTTP, timer, blob and queue triggers, Easy Auth emulation, the admin "run now" API and
the static admin page; `devhost.stack` starts it with Azurite and m365sim and starts it
again when it dies. Nothing in the product imports this package, and it is never deployed.
"""
