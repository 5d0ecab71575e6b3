"""Basin through the clients analysts use: ADBC's Flight SQL driver and pyarrow.flight."""

import json
import urllib.error
import urllib.request

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import ADMIN_PASSWORD


def connect(server, **kwargs):
    """An ADBC connection; by default as the admin, with username and password
    (the driver trades them for a session token in the Flight handshake)."""
    db_kwargs = kwargs or {"username": "admin", "password": ADMIN_PASSWORD}
    return flightsql.connect(server.flight, db_kwargs=db_kwargs, autocommit=True)


def rest(server, method, path, body=None, token=None):
    request = urllib.request.Request(
        f"{server.http}/api/v1{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def api_key(server, scopes):
    token = rest(server, "POST", "/auth/login", {"username": "admin", "password": ADMIN_PASSWORD})["data"]["token"]
    return rest(server, "POST", "/api-keys", {"name": "pytest", "scopes": scopes}, token)["data"]["secret"]


@pytest.fixture(scope="module")
def conn(server):
    with connect(server) as conn:
        table = pa.table(
            {
                "id": pa.array([1, 2, 3, 4], pa.int64()),
                "city": pa.array(["Oslo", "Zürich", None, "Kraków"]),
                "amount": pa.array([10.5, 20.25, None, 3.0]),
            }
        )
        with conn.cursor() as cur:
            assert cur.adbc_ingest("cities", table, mode="create") == 4
        yield conn


def test_execute_and_fetch_arrow(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT id, city, amount FROM cities ORDER BY id")
        table = cur.fetch_arrow_table()
    assert table.num_rows == 4
    assert table.column("city").to_pylist() == ["Oslo", "Zürich", None, "Kraków"]
    assert table.column("amount").to_pylist() == [10.5, 20.25, None, 3.0]


def test_prepared_statement_with_parameters(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT city FROM cities WHERE id = ?", parameters=(2,))
        assert cur.fetchall() == [("Zürich",)]
        cur.execute("SELECT city FROM cities WHERE id = ?", parameters=(4,))
        assert cur.fetchall() == [("Kraków",)]


def test_get_objects_lists_datasets_and_columns(conn):
    objects = conn.adbc_get_objects(depth="all", catalog_filter="basin").read_all().to_pylist()
    catalogs = {c["catalog_name"]: c for c in objects}
    assert "basin" in catalogs
    schemas = {s["db_schema_name"]: s for s in catalogs["basin"]["catalog_db_schemas"]}
    tables = {t["table_name"]: t for t in schemas["public"]["db_schema_tables"]}
    assert "cities" in tables
    columns = [c["column_name"] for c in tables["cities"]["table_columns"]]
    assert columns == ["id", "city", "amount"]


def test_ingest_append_and_replace(conn):
    more = pa.table({"id": pa.array([5], pa.int64()), "city": ["Lyon"], "amount": [1.0]})
    with conn.cursor() as cur:
        assert cur.adbc_ingest("cities_copy", more, mode="create") == 1
        assert cur.adbc_ingest("cities_copy", more, mode="append") == 1
        cur.execute("SELECT count(*) AS n FROM cities_copy")
        assert cur.fetchone() == (2,)
        assert cur.adbc_ingest("cities_copy", more, mode="replace") == 1
        cur.execute("SELECT count(*) AS n FROM cities_copy")
        assert cur.fetchone() == (1,)
        with pytest.raises(adbc_driver_manager.Error):
            cur.adbc_ingest("cities_copy", more, mode="create")


def test_bad_sql_is_an_error_with_a_position(conn):
    with conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.ProgrammingError) as failure:
            cur.execute("SELECT id,\n  nope FROM cities")
        assert "line 2" in str(failure.value)


def test_wrong_token_is_refused(server):
    with connect(
        server,
        **{adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer wrong"},
    ) as bad:
        with bad.cursor() as cur:
            with pytest.raises(adbc_driver_manager.Error) as failure:
                cur.execute("SELECT 1")
            assert "nauthenticated" in str(failure.value) or "UNAUTHENTICATED" in str(failure.value)


def test_pyarrow_flight_do_get_of_a_dataset(server, conn):
    client = flight.FlightClient(server.flight)
    token_pair = client.authenticate_basic_token("admin", ADMIN_PASSWORD)
    options = flight.FlightCallOptions(headers=[token_pair])
    listed = [info.descriptor.path[0].decode() for info in client.list_flights(options=options)]
    assert "cities" in listed
    info = client.get_flight_info(flight.FlightDescriptor.for_path("cities"), options)
    assert info.total_records == 4
    table = client.do_get(info.endpoints[0].ticket, options).read_all()
    assert sorted(table.column("id").to_pylist()) == [1, 2, 3, 4]
    schema = client.get_schema(flight.FlightDescriptor.for_path("cities"), options).schema
    assert schema.names == ["id", "city", "amount"]


def test_api_key_scopes_hold_for_adbc(server, conn):
    bearer = adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value
    with connect(server, **{bearer: f"Bearer {api_key(server, ['read'])}"}) as reader:
        with reader.cursor() as cur:
            cur.execute("SELECT count(*) AS n FROM cities")
            assert cur.fetch_arrow_table().column("n").to_pylist() == [4]
            with pytest.raises(adbc_driver_manager.Error) as failure:
                cur.adbc_ingest("cities", pa.table({"id": [9]}), mode="append")
            assert "forbidden" in str(failure.value) or "PERMISSION" in str(failure.value).upper()


def test_wrong_password_is_refused(server):
    with pytest.raises(adbc_driver_manager.Error) as failure:
        with connect(server, username="admin", password="not-the-password") as bad:
            with bad.cursor() as cur:
                cur.execute("SELECT 1")
    assert "nauthenticated" in str(failure.value) or "UNAUTHENTICATED" in str(failure.value)


# Passwords whose `username:password` has each length remainder mod 3, so the
# base64 of Basic credentials needs no padding, one `=` or two (the Go-based
# ADBC driver sends it unpadded), and one outside ASCII.
SIGN_IN_PASSWORDS = {
    "pad0": "Rain-secret-pw-74310!",  # "pad0:" + 21 characters = 26 bytes
    "pad1": "Rain-secret-pw-743100!",  # 27 bytes
    "pad2": "Rain-secret-pw-7431000!",  # 28 bytes
    "utf8": "Grüße-aus-Kraków-€-密码",
}


@pytest.fixture(scope="module")
def sign_in_users(server):
    token = rest(server, "POST", "/auth/login", {"username": "admin", "password": ADMIN_PASSWORD})["data"]["token"]
    for username, password in SIGN_IN_PASSWORDS.items():
        body = {"username": username, "email": f"{username}@example.com", "password": password, "role": "viewer"}
        rest(server, "POST", "/users", body, token)
    lengths = {len(f"{u}:{p}".encode()) % 3 for u, p in SIGN_IN_PASSWORDS.items()}
    assert lengths == {0, 1, 2}, "the passwords must cover every padding case"
    return SIGN_IN_PASSWORDS


@pytest.mark.parametrize("username", list(SIGN_IN_PASSWORDS))
def test_adbc_signs_in_with_any_password_length(server, sign_in_users, username):
    with connect(server, username=username, password=sign_in_users[username]) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 AS one")
            assert cur.fetchone() == (1,)


@pytest.mark.parametrize("username", list(SIGN_IN_PASSWORDS))
def test_pyarrow_flight_signs_in_with_any_password_length(server, sign_in_users, username):
    client = flight.FlightClient(server.flight)
    header, value = client.authenticate_basic_token(username, sign_in_users[username])
    assert header == b"authorization" and value.startswith(b"Bearer ")
    options = flight.FlightCallOptions(headers=[(header, value)])
    # Listing needs a signed-in caller; a viewer sees no datasets of its own.
    assert isinstance(list(client.list_flights(options=options)), list)


def test_basic_credentials_over_rest_padded_or_not(server, sign_in_users):
    import base64

    for username, password in sign_in_users.items():
        pair = f"{username}:{password}".encode()
        for encoded in {base64.b64encode(pair), base64.b64encode(pair).rstrip(b"=")}:
            request = urllib.request.Request(f"{server.http}/api/v1/auth/me")
            request.add_header("authorization", f"Basic {encoded.decode()}")
            with urllib.request.urlopen(request) as response:
                assert json.load(response)["data"]["user"]["username"] == username
    request = urllib.request.Request(f"{server.http}/api/v1/auth/me")
    request.add_header("authorization", "Basic not*base64")
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(request)
    assert failure.value.code == 401
    assert json.load(failure.value)["error"]["message"] == "malformed Basic credentials"
