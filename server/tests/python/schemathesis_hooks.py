"""Schemathesis hooks for test_openapi_fuzz.py. The fuzzer may do anything
except end the credentials it runs with, so the few requests that would
(revoking its own API key; disabling, deleting or re-passwording the admin;
locking the admin out with wrong passwords) are pointed at a name that does
not exist instead; and the document's example server-side file becomes the
test's copy of it. `before_call` runs in every phase, stateful included."""

import os

import schemathesis

OWN_KEY_ID = os.environ.get("BASIN_FUZZ_KEY_ID", "")
# The server-side file the example of `POST /datasets` stands for.
EXAMPLE_IMPORT = "/srv/imports/orders.csv"
IMPORT = os.environ.get("BASIN_FUZZ_IMPORT", EXAMPLE_IMPORT)
ADMIN = "admin"
STAND_IN = "no_such_account"


@schemathesis.hook
def before_call(context, case, kwargs):
    method, path = case.operation.method.upper(), case.operation.path
    parameters = case.path_parameters or {}
    if path == "/api-keys/{id}" and method == "DELETE" and parameters.get("id") == OWN_KEY_ID:
        case.path_parameters = {**parameters, "id": STAND_IN}
    elif path == "/users/{username}" and method in ("PATCH", "DELETE") and parameters.get("username") == ADMIN:
        case.path_parameters = {**parameters, "username": STAND_IN}
    elif path == "/auth/login" and isinstance(case.body, dict) and case.body.get("username") == ADMIN:
        case.body = {**case.body, "username": STAND_IN}
    elif path == "/datasets" and isinstance(case.body, dict) and case.body.get("source") == EXAMPLE_IMPORT:
        case.body = {**case.body, "source": IMPORT}
