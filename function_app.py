"""The Functions entry point: build the app and register blueprints. Nothing else happens at import."""

import azure.functions as func

from licensing.functions.queues import bp as queue_functions

app = func.FunctionApp()
app.register_functions(queue_functions)
