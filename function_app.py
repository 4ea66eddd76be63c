"""The Functions entry point: build the app and register blueprints. Nothing else happens at import."""

import azure.functions as func

from licensing.functions.http import bp as http_functions
from licensing.functions.queues import bp as queue_functions
from licensing.functions.status import bp as status_functions
from licensing.functions.timers import bp as timer_functions

app = func.FunctionApp()
app.register_functions(queue_functions)
app.register_functions(http_functions)
app.register_functions(timer_functions)
app.register_functions(status_functions)
