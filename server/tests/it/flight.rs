//! Flight SQL against the real server, through arrow-flight's own client.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandStatementIngest, ProstMessageExt, SqlInfo, TableDefinitionOptions, TableExistsOption,
    TableNotExistOption,
};
use arrow_flight::{
    Action, CancelFlightInfoRequest, Criteria, FlightDescriptor, FlightInfo, Ticket,
};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tonic::transport::Channel;

use crate::common::{ADMIN_PASSWORD, TestServer, door_of};

async fn channel(server: &TestServer) -> Channel {
    Channel::from_shared(format!("http://{}", server.flight_addr))
        .unwrap()
        .connect()
        .await
        .expect("flight connects")
}

/// A client that has traded Basic credentials for the bearer token.
async fn client(server: &TestServer) -> FlightSqlServiceClient<Channel> {
    let mut client = FlightSqlServiceClient::new(channel(server).await);
    client
        .handshake("admin", ADMIN_PASSWORD)
        .await
        .expect("handshake");
    client
}

async fn fetch(client: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("endpoint has a ticket");
        let stream = client.do_get(ticket).await.expect("do_get");
        batches.extend(stream.try_collect::<Vec<_>>().await.expect("stream"));
    }
    batches
}

async fn sql(client: &mut FlightSqlServiceClient<Channel>, query: &str) -> RecordBatch {
    let info = client.execute(query.into(), None).await.expect(query);
    let schema = Arc::new(info.clone().try_decode_schema().unwrap());
    let batches = fetch(client, info).await;
    arrow::compute::concat_batches(&schema, &batches).unwrap()
}

fn int_column(batch: &RecordBatch, name: &str) -> Vec<i64> {
    let column =
        arrow::compute::cast(batch.column_by_name(name).unwrap(), &DataType::Int64).unwrap();
    column.as_primitive::<Int64Type>().values().to_vec()
}

#[tokio::test]
async fn queries_stream_the_same_arrow_as_rest() {
    let server = TestServer::with_orders().await;
    let mut client = client(&server).await;
    let query = "SELECT * FROM orders ORDER BY order_id";
    let info = client.execute(query.into(), None).await.unwrap();
    let schema = Arc::new(info.clone().try_decode_schema().unwrap());
    assert!(schema.field_with_name("customer").is_ok());
    let flight = arrow::compute::concat_batches(&schema, &fetch(&mut client, info).await).unwrap();
    assert_eq!(flight.num_rows(), 12);

    let response = server
        .client
        .post(server.url("/api/v1/query"))
        .header("accept", "application/vnd.apache.arrow.stream")
        .json(&serde_json::json!({ "sql": query }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
    let rest_schema = reader.schema();
    let rest: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    let rest = arrow::compute::concat_batches(&rest_schema, &rest).unwrap();
    assert_eq!(rest, flight, "Flight and REST disagree");
}

#[tokio::test]
async fn calls_without_valid_credentials_are_refused() {
    let server = TestServer::with_orders().await;
    let mut anonymous = FlightSqlServiceClient::new(channel(&server).await);
    let err = anonymous
        .execute("SELECT 1".into(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unauthenticated:"), "{err}");

    let mut wrong = FlightSqlServiceClient::new(channel(&server).await);
    let err = wrong
        .handshake("admin", "not-the-password")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unauthenticated:"), "{err}");
    wrong.set_token("not-the-token".into());
    let err = wrong.execute("SELECT 1".into(), None).await.unwrap_err();
    assert!(err.to_string().contains("unauthenticated:"), "{err}");

    // A bearer token works without a handshake.
    let mut bearer = FlightSqlServiceClient::new(channel(&server).await);
    bearer.set_token(server.token.clone());
    assert_eq!(
        int_column(&sql(&mut bearer, "SELECT 1 AS one").await, "one"),
        [1]
    );
}

#[tokio::test]
async fn bad_sql_is_invalid_argument_with_a_position() {
    let server = TestServer::with_orders().await;
    let mut client = client(&server).await;
    let err = client
        .execute("SELECT order_id,\n  nope FROM orders".into(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("invalid argument") && err.contains("sql_error:"),
        "{err}"
    );
    assert!(err.contains("line 2"), "{err}");

    let err = client
        .execute("SELECT * FROM missing".into(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("sql_error:"), "{err}");
    assert!(err.contains("missing"), "{err}");
}

#[tokio::test]
async fn prepared_statements_bind_and_rebind_parameters() {
    let server = TestServer::with_orders().await;
    let mut client = client(&server).await;
    let mut prepared = client
        .prepare(
            "SELECT order_id FROM orders WHERE order_id > ? ORDER BY order_id".into(),
            None,
        )
        .await
        .unwrap();
    let parameters = prepared.parameter_schema().unwrap().clone();
    assert_eq!(parameters.fields().len(), 1);
    assert_eq!(parameters.field(0).data_type(), &DataType::Int64);
    assert!(
        prepared
            .dataset_schema()
            .unwrap()
            .field_with_name("order_id")
            .is_ok()
    );

    let bind = |value: i64| {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("$1", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![value]))],
        )
        .unwrap()
    };
    prepared.set_parameters(bind(10)).unwrap();
    let info = prepared.execute().await.unwrap();
    let batches = fetch(&mut client, info).await;
    let ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| int_column(b, "order_id"))
        .collect();
    assert!(ids.iter().all(|id| *id > 10) && !ids.is_empty(), "{ids:?}");

    prepared.set_parameters(bind(1000)).unwrap();
    let info = prepared.execute().await.unwrap();
    let rows: usize = fetch(&mut client, info)
        .await
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(rows, 0);
    prepared.close().await.unwrap();
}

#[tokio::test]
async fn metadata_commands_describe_datasets() {
    let server = TestServer::with_orders().await;
    let mut client = client(&server).await;

    let info = client.get_catalogs().await.unwrap();
    let catalogs = fetch(&mut client, info).await;
    let names: Vec<String> = catalogs
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(names.contains(&"basin".to_owned()), "{names:?}");

    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: Some("basin".into()),
            db_schema_filter_pattern: None,
        })
        .await
        .unwrap();
    let schemas: usize = fetch(&mut client, info)
        .await
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert!(schemas >= 1);

    let info = client
        .get_tables(CommandGetTables {
            catalog: Some("basin".into()),
            db_schema_filter_pattern: Some("public".into()),
            table_name_filter_pattern: Some("ord%".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let tables = fetch(&mut client, info).await;
    let tables = arrow::compute::concat_batches(&tables[0].schema(), &tables).unwrap();
    assert_eq!(tables.num_rows(), 1);
    let name = tables
        .column_by_name("table_name")
        .unwrap()
        .as_string::<i32>()
        .value(0);
    assert_eq!(name, "orders");
    let encoded = tables
        .column_by_name("table_schema")
        .unwrap()
        .as_binary::<i32>()
        .value(0);
    let schema = arrow::ipc::convert::try_schema_from_ipc_buffer(encoded).unwrap();
    assert!(schema.field_with_name("amount").is_ok());

    let info = client.get_table_types().await.unwrap();
    let types: usize = fetch(&mut client, info)
        .await
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(types, 2);

    let info = client
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::SqlIdentifierQuoteChar,
        ])
        .await
        .unwrap();
    let info_rows: usize = fetch(&mut client, info)
        .await
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(info_rows, 2);

    let info = client
        .get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: None })
        .await
        .unwrap();
    let type_rows: usize = fetch(&mut client, info)
        .await
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert!(type_rows >= 10);

    let info = client
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: None,
            db_schema: None,
            table: "orders".into(),
        })
        .await
        .unwrap();
    assert!(
        info.clone()
            .try_decode_schema()
            .unwrap()
            .field_with_name("key_sequence")
            .is_ok()
    );
    let keys: usize = fetch(&mut client, info)
        .await
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(keys, 0);
}

fn people(ids: &[i64]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(
                ids.iter()
                    .map(|i| format!("person {i}"))
                    .collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

fn ingest_command(
    table: &str,
    if_not_exist: TableNotExistOption,
    if_exists: TableExistsOption,
) -> CommandStatementIngest {
    CommandStatementIngest {
        table_definition_options: Some(TableDefinitionOptions {
            if_not_exist: if_not_exist as i32,
            if_exists: if_exists as i32,
        }),
        table: table.into(),
        schema: None,
        catalog: None,
        temporary: false,
        transaction_id: None,
        options: Default::default(),
    }
}

#[tokio::test]
async fn flight_ingests_and_sql_writes_are_audited_with_their_door() {
    let server = TestServer::with_orders().await;
    let mut client = client(&server).await;
    let create = ingest_command(
        "people",
        TableNotExistOption::Create,
        TableExistsOption::Fail,
    );
    let stream = futures::stream::iter(vec![Ok(people(&[1, 2]))]);
    client.execute_ingest(create, stream).await.unwrap();
    client
        .execute_update("INSERT INTO people VALUES (3, 'c')".into(), None)
        .await
        .unwrap();

    let (_, body) = server.get("/api/v1/audit?action=dataset.ingest").await;
    let entries = body["data"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{body}");
    assert_eq!(entries[0]["actor"], "admin");
    assert_eq!(entries[0]["target"], "dataset:people");
    assert_eq!(entries[0]["outcome"], "success");
    assert_eq!(door_of(&entries[0]), "flight", "{body}");
    let (_, body) = server.get("/api/v1/audit?action=sql.write").await;
    let entries = body["data"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{body}");
    assert_eq!(door_of(&entries[0]), "flight", "{body}");
}

#[tokio::test]
async fn ingest_and_sql_writes_are_atomic_versions() {
    let server = TestServer::with_orders().await;
    let mut client = client(&server).await;

    let create = ingest_command(
        "people",
        TableNotExistOption::Create,
        TableExistsOption::Fail,
    );
    let stream = futures::stream::iter(vec![Ok(people(&[1, 2])), Ok(people(&[3]))]);
    assert_eq!(
        client.execute_ingest(create.clone(), stream).await.unwrap(),
        3
    );

    // Creating again fails; appending adds a version.
    let stream = futures::stream::iter(vec![Ok(people(&[4]))]);
    let err = client.execute_ingest(create, stream).await.unwrap_err();
    assert!(err.to_string().contains("dataset_exists:"), "{err}");
    let append = ingest_command(
        "people",
        TableNotExistOption::Fail,
        TableExistsOption::Append,
    );
    let stream = futures::stream::iter(vec![Ok(people(&[4, 5]))]);
    assert_eq!(
        client.execute_ingest(append.clone(), stream).await.unwrap(),
        2
    );

    // A DoPut the client abandons midway (the connection resets) writes nothing.
    let descriptor = FlightDescriptor::new_cmd(append.as_any().encode_to_vec());
    let data: Vec<arrow_flight::FlightData> = arrow_flight::encode::FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(descriptor))
        .build(futures::stream::iter(vec![Ok(people(&[6]))]))
        .try_collect()
        .await
        .unwrap();
    let stalled = futures::stream::iter(data).chain(futures::stream::pending());
    let mut raw =
        arrow_flight::flight_service_client::FlightServiceClient::new(channel(&server).await);
    let token = server.token.clone();
    let abandoned = tokio::spawn(async move { raw.do_put(authorized(&token, stalled)).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    abandoned.abort();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        int_column(
            &sql(&mut client, "SELECT count(*) AS n FROM people").await,
            "n"
        ),
        [5]
    );
    let (_, versions) = server.get("/api/v1/datasets/people/versions").await;
    assert_eq!(versions["data"].as_array().unwrap().len(), 2, "{versions}");

    let replace = ingest_command(
        "people",
        TableNotExistOption::Create,
        TableExistsOption::Replace,
    );
    let stream = futures::stream::iter(vec![Ok(people(&[9]))]);
    assert_eq!(client.execute_ingest(replace, stream).await.unwrap(), 1);
    assert_eq!(
        int_column(&sql(&mut client, "SELECT id FROM people").await, "id"),
        [9]
    );

    let created = client
        .execute_update(
            "CREATE TABLE big_orders AS SELECT order_id, amount FROM orders WHERE amount > 100"
                .into(),
            None,
        )
        .await
        .unwrap();
    assert!(created > 0);
    let inserted = client
        .execute_update(
            "INSERT INTO people VALUES (10, 'ten'), (11, NULL)".into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(inserted, 2);
    let inserted = client
        .execute_update(
            "INSERT INTO people (id) SELECT order_id FROM orders WHERE order_id < 3".into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(inserted, 2);
    let batch = sql(
        &mut client,
        "SELECT count(*) AS n, count(name) AS named FROM people",
    )
    .await;
    assert_eq!(int_column(&batch, "n"), [5]);
    assert_eq!(int_column(&batch, "named"), [2]);

    // A write run as a query returns its count; a bad write changes nothing.
    let batch = sql(&mut client, "INSERT INTO people (id) VALUES (99)").await;
    assert_eq!(int_column(&batch, "rows_written"), [1]);
    let err = client
        .execute_update("INSERT INTO people (nope) VALUES (1)".into(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("schema_mismatch"), "{err}");
    let err = client
        .execute_update("DROP TABLE people".into(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sql_error:"), "{err}");
    assert_eq!(
        int_column(
            &sql(&mut client, "SELECT count(*) AS n FROM people").await,
            "n"
        ),
        [6]
    );
}

fn authorized<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn plain_flight_lists_and_streams_datasets() {
    let server = TestServer::with_orders().await;
    let (status, _) = server
        .upload_file("orders", "mode=append", "orders_april.csv")
        .await;
    assert_eq!(status, 200);
    let mut flight =
        arrow_flight::flight_service_client::FlightServiceClient::new(channel(&server).await);

    let infos: Vec<FlightInfo> = flight
        .list_flights(authorized(&server.token, Criteria::default()))
        .await
        .unwrap()
        .into_inner()
        .try_collect()
        .await
        .unwrap();
    let orders = infos
        .iter()
        .find(|i| {
            i.flight_descriptor
                .as_ref()
                .is_some_and(|d| d.path == ["orders"])
        })
        .expect("orders is listed");
    assert_eq!(orders.total_records, 14);

    for (path, rows) in [
        (vec!["orders".to_owned()], 14),
        (vec!["orders".to_owned(), "0".to_owned()], 12),
    ] {
        let descriptor = FlightDescriptor::new_path(path.clone());
        let info = flight
            .get_flight_info(authorized(&server.token, descriptor.clone()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.total_records, rows);
        let ticket: Ticket = info.endpoint[0].ticket.clone().unwrap();
        let stream = flight
            .do_get(authorized(&server.token, ticket))
            .await
            .unwrap()
            .into_inner();
        let batches: Vec<RecordBatch> =
            arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
                stream.map_err(Into::into),
            )
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
            rows as usize,
            "{path:?}"
        );
        let schema = flight
            .get_schema(authorized(&server.token, descriptor))
            .await
            .unwrap()
            .into_inner();
        let schema = Schema::try_from(&schema).unwrap();
        assert!(schema.field_with_name("customer").is_ok());
    }

    let missing = FlightDescriptor::new_path(vec!["nope".into()]);
    let err = flight
        .get_flight_info(authorized(&server.token, missing))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = flight
        .list_flights(tonic::Request::new(Criteria::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn a_canceled_query_does_not_run() {
    let server = TestServer::with_orders().await;
    let mut client = client(&server).await;
    let info = client
        .execute(
            "SELECT count(*) FROM generate_series(1, 100000000) a, generate_series(1, 1000) b"
                .into(),
            None,
        )
        .await
        .unwrap();
    let request = CancelFlightInfoRequest {
        info: Some(info.clone()),
    };
    let action = Action::new("CancelFlightInfo", request.encode_to_vec());
    let results: Vec<_> = client
        .do_action(action)
        .await
        .unwrap()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(results.len(), 1);
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let err = match client.do_get(ticket).await {
        Ok(stream) => stream
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err()
            .to_string(),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("Cancelled") || err.contains("canceled"),
        "{err}"
    );
    // The server stays healthy for the next query.
    assert_eq!(
        int_column(&sql(&mut client, "SELECT 2 AS two").await, "two"),
        [2]
    );
    drop(server);
}

#[tokio::test]
async fn nulls_and_text_survive_the_trip() {
    let server = TestServer::with_orders().await;
    let mut client = client(&server).await;
    let batch = sql(
        &mut client,
        "SELECT customer, CAST(NULL AS VARCHAR) AS nothing FROM orders WHERE order_id = 3",
    )
    .await;
    assert_eq!(batch.column(0).as_string::<i32>().value(0), "Zoë Ørsted");
    assert!(batch.column(1).is_null(0));
}
