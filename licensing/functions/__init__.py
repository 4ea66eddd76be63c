"""Azure Functions blueprints: thin entrypoints that parse a trigger, call a service, map the outcome."""
