"""The typed Python client that `scripts/generate-clients.sh` generates from
the OpenAPI document (openapi-python-client) drives the README's walk-through
against a real `basin serve`: sign in, upload, query, preview, append, versions,
time travel, restore. Every answer must parse into the generated models."""

import importlib
import io
import os
import pathlib
import subprocess
import sys

import pytest

from conftest import ADMIN_PASSWORD

ROOT = pathlib.Path(__file__).resolve().parents[3]
TESTDATA = ROOT / "testdata"


@pytest.fixture(scope="module")
def basin_client(tmp_path_factory):
    out = tmp_path_factory.mktemp("clients")
    subprocess.run(
        [str(ROOT / "scripts" / "generate-clients.sh"), str(out), "python"],
        check=True,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
    )
    sys.path.insert(0, str(out / "python"))
    try:
        yield importlib.import_module("basin_client")
    finally:
        sys.path.remove(str(out / "python"))


def test_generated_client_walks_through_the_readme(server, basin_client):
    from basin_client.api.auth import login
    from basin_client.api.datasets import (
        list_dataset_versions,
        preview_dataset,
        restore_dataset,
        upload_dataset,
    )
    from basin_client.api.query import query
    from basin_client.models import (
        BadRowPolicy,
        DatasetAnswer,
        IngestAnswer,
        LoginAnswer,
        LoginBody,
        PreviewResult,
        QueryResult,
        RestoreBodyVersion,
        SqlQuery,
        VersionList,
        WriteMode,
    )
    from basin_client.types import File

    base_url = f"{server.http}/api/v1"
    anonymous = basin_client.Client(base_url=base_url, raise_on_unexpected_status=True)
    signed_in = login.sync(client=anonymous, body=LoginBody(username="admin", password=ADMIN_PASSWORD))
    assert isinstance(signed_in, LoginAnswer), signed_in
    assert signed_in.data.user.username == "admin"
    client = basin_client.AuthenticatedClient(
        base_url=base_url, token=signed_in.data.token, raise_on_unexpected_status=True
    )

    created = upload_dataset.sync_detailed(
        "walk_orders",
        client=client,
        body=File(payload=io.BytesIO((TESTDATA / "orders.csv").read_bytes()), file_name="orders.csv"),
        on_error=BadRowPolicy.SKIP,
        quote_char='"',
    )
    assert created.status_code == 201, created.content
    assert isinstance(created.parsed, IngestAnswer)
    assert created.parsed.data.version == 0
    assert created.parsed.data.rows_written > 0
    assert [column.name for column in created.parsed.data.schema][:2] == ["order_id", "customer"]
    first_rows = created.parsed.data.rows_written

    totals = query.sync(
        client=client,
        body=SqlQuery(sql="SELECT currency, sum(amount) AS total FROM walk_orders GROUP BY currency ORDER BY currency"),
    )
    assert isinstance(totals, QueryResult), totals
    assert [column.name for column in totals.data.columns] == ["currency", "total"]
    assert totals.meta.row_count == len(totals.data.rows) > 0

    appended = upload_dataset.sync(
        "walk_orders",
        client=client,
        body=File(payload=io.BytesIO((TESTDATA / "orders_april.csv.gz").read_bytes())),
        mode=WriteMode.APPEND,
    )
    assert isinstance(appended, IngestAnswer), appended
    assert appended.data.version == 1

    page = preview_dataset.sync("walk_orders", client=client, limit=5, offset=0)
    assert isinstance(page, PreviewResult), page
    assert len(page.data.rows) == 5
    assert page.meta.version == 1
    assert page.meta.page.total == first_rows + appended.data.rows_written

    then = preview_dataset.sync("walk_orders", client=client, version=0)
    assert isinstance(then, PreviewResult), then
    assert then.meta.page.total == first_rows

    versions = list_dataset_versions.sync("walk_orders", client=client)
    assert isinstance(versions, VersionList), versions
    assert sorted(v.version for v in versions.data) == [0, 1]

    restored = restore_dataset.sync("walk_orders", client=client, body=RestoreBodyVersion(version=0))
    assert isinstance(restored, DatasetAnswer), restored
    assert restored.data.version == 2
    assert restored.data.row_count == first_rows
