"""HTTP, timer and blob triggers: thin entry points that call `shared/`."""
