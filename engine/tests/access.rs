//! The engine decides access: every caller-facing method refuses a principal
//! without the right role, scope or dataset, when called directly, with no
//! transport in front of it.

use std::sync::Arc;

use basin_engine::catalog::{DatasetFilter, DatasetSort, JobFilter, Page};
use basin_engine::datasets::write::{IfExists, IfMissing, StreamWriteMode};
use basin_engine::datasets::{DatasetPatch, TimeTravel};
use basin_engine::identity::{
    ClientInfo, DatasetGrant, Door, GrantAccess, Principal, Role, Scope, Via,
};
use basin_engine::ingest::IngestOptions;
use basin_engine::runtime::events::FeedEvent;
use basin_engine::sources::connections::{ConnectionPatch, NewConnection};
use basin_engine::{Engine, EngineConfig, Error};
use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

fn user(role: Role) -> Principal {
    Principal {
        user_id: Some("u1".into()),
        username: "ann".into(),
        role,
        via: Via::Session { id: "s1".into() },
        grants: Arc::from(Vec::new()),
        client: ClientInfo::through(Door::Rest),
    }
}

fn key(role: Role, scopes: &[Scope], datasets: Option<&[&str]>) -> Principal {
    Principal {
        via: Via::ApiKey {
            id: "k1".into(),
            scopes: scopes.to_vec(),
            datasets: datasets.map(|d| d.iter().map(|s| (*s).to_owned()).collect()),
        },
        ..user(role)
    }
}

/// Whether `result` is a refusal of the caller (not a lookup or input error).
fn refused<T>(what: &str, result: Result<T, Error>) {
    match result {
        Err(Error::Forbidden(_) | Error::Unauthenticated(_)) => {}
        Err(other) => panic!("{what}: expected a refusal, got {other:?}"),
        Ok(_) => panic!("{what}: expected a refusal, it was allowed"),
    }
}

fn first_page() -> Page {
    Page {
        limit: 100,
        offset: 0,
    }
}

fn one_row_stream() -> SendableRecordBatchStream {
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1]))])
        .expect("batch");
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter([Ok(batch)]),
    ))
}

/// An engine with datasets `orders` and `users`, written by the local operator.
async fn engine_with_datasets(dir: &tempfile::TempDir) -> Engine {
    let engine = Engine::open(EngineConfig::new(dir.path().join("data")))
        .await
        .expect("engine opens");
    let csv = dir.path().join("rows.csv");
    std::fs::write(&csv, "id,name\n1,a\n2,b\n").expect("csv written");
    for name in ["orders", "users"] {
        engine
            .ingest_file(
                &Principal::local(),
                name,
                &csv,
                IngestOptions::default(),
                None,
            )
            .await
            .expect("ingest");
    }
    engine
}

#[tokio::test]
async fn dataset_methods_refuse_callers_without_the_right() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine_with_datasets(&dir).await;
    let viewer = user(Role::Viewer);
    let csv = dir.path().join("rows.csv");

    refused(
        "update_dataset",
        engine
            .update_dataset(&viewer, "orders", DatasetPatch::default())
            .await,
    );
    refused(
        "delete_dataset",
        engine.delete_dataset(&viewer, "orders", false).await,
    );
    refused(
        "restore",
        engine
            .restore(&viewer, "orders", TimeTravel::Version(0))
            .await,
    );
    refused(
        "ingest_file",
        engine
            .ingest_file(&viewer, "orders", &csv, IngestOptions::default(), None)
            .await,
    );
    refused(
        "resolve_import",
        engine
            .resolve_import(&viewer, "orders", &csv.display().to_string())
            .await,
    );
    let append = StreamWriteMode {
        if_exists: IfExists::Append,
        if_missing: IfMissing::Create,
    };
    refused(
        "write_stream",
        engine
            .write_stream(&viewer, "orders", append, one_row_stream())
            .await,
    );

    // A write grant on one dataset does not cover renaming it to another name.
    let mut granted = user(Role::Viewer);
    granted.grants = Arc::from(vec![DatasetGrant {
        dataset: "orders".into(),
        access: GrantAccess::Write,
    }]);
    let rename = DatasetPatch {
        name: Some("orders_old".into()),
        ..DatasetPatch::default()
    };
    refused(
        "rename beyond the grant",
        engine.update_dataset(&granted, "orders", rename).await,
    );

    // A write-only key loads data but reads none.
    let loader = key(Role::Editor, &[Scope::Write], None);
    refused("dataset", engine.dataset(&loader, "orders").await);
    refused(
        "preview",
        engine.preview(&loader, "orders", 10, 0, None).await,
    );
    refused("versions", engine.versions(&loader, "orders", None).await);
    refused("statistics", engine.statistics(&loader, "orders").await);
    refused(
        "dataset_schema_history",
        engine.dataset_schema_history(&loader, "orders").await,
    );
    refused(
        "read_dataset",
        engine.read_dataset(&loader, "orders", None).await,
    );
    refused(
        "dataset_shape",
        engine.dataset_shape(&loader, "orders", None).await,
    );
    refused(
        "list_datasets",
        engine
            .list_datasets(
                &loader,
                DatasetFilter::default(),
                DatasetSort::NameAsc,
                first_page(),
            )
            .await,
    );
    refused(
        "list_jobs",
        engine
            .list_jobs(&loader, &JobFilter::default(), first_page())
            .await,
    );
    assert!(
        engine
            .readable_dataset_names(&loader, "")
            .await
            .expect("names")
            .is_empty()
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_key_limited_to_datasets_sees_only_those() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine_with_datasets(&dir).await;
    let limited = key(Role::Admin, &[Scope::Read, Scope::Write], Some(&["orders"]));

    let (listed, _) = engine
        .list_datasets(
            &limited,
            DatasetFilter::default(),
            DatasetSort::NameAsc,
            first_page(),
        )
        .await
        .expect("list");
    let names: Vec<_> = listed.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["orders"]);
    assert_eq!(
        engine
            .readable_dataset_names(&limited, "")
            .await
            .expect("names"),
        ["orders"]
    );
    engine.dataset(&limited, "orders").await.expect("its own");
    refused("dataset", engine.dataset(&limited, "users").await);
    refused(
        "read_dataset",
        engine.read_dataset(&limited, "users", None).await,
    );
    refused(
        "write_stream",
        engine
            .write_stream(
                &limited,
                "users",
                StreamWriteMode {
                    if_exists: IfExists::Append,
                    if_missing: IfMissing::Create,
                },
                one_row_stream(),
            )
            .await,
    );
    // Connections read with their own credentials: out of such a key's reach.
    refused("list_connections", engine.list_connections(&limited).await);
    engine.shutdown().await;
}

#[tokio::test]
async fn events_are_filtered_by_the_engine_and_keep_their_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine_with_datasets(&dir).await;
    engine.flush_events().await;
    let limited = key(Role::Admin, &[Scope::Read], Some(&["orders"]));

    let stored = engine
        .events_after(&Principal::local(), 0, 1000)
        .await
        .expect("the operator's events");
    assert!(stored.iter().all(|e| e.visible().is_some()));
    let page = engine
        .events_after(&limited, 0, 1000)
        .await
        .expect("the key's events");
    let seqs: Vec<i64> = page.iter().map(FeedEvent::seq).collect();
    assert_eq!(seqs, stored.iter().map(FeedEvent::seq).collect::<Vec<_>>());
    let seen: Vec<_> = page.iter().filter_map(FeedEvent::visible).collect();
    assert!(
        seen.iter().any(|e| e.dataset.as_deref() == Some("orders")),
        "its dataset's events: {seen:?}"
    );
    assert!(
        seen.iter().all(|e| e.dataset.as_deref() == Some("orders")),
        "only its dataset's events: {seen:?}"
    );

    let mut feed = engine.event_feed(&limited).await.expect("feed");
    let start = feed.start();
    assert_eq!(start, seqs.last().copied().unwrap_or(0));
    for name in ["users", "orders"] {
        engine
            .write_stream(
                &Principal::local(),
                name,
                StreamWriteMode {
                    if_exists: IfExists::Replace,
                    if_missing: IfMissing::Fail,
                },
                one_row_stream(),
            )
            .await
            .expect("write");
    }
    engine.flush_events().await;
    let mut next = start + 1;
    let mut seen_orders = false;
    while let Ok(event) = feed.try_recv() {
        assert_eq!(event.seq(), next, "numbers stay contiguous");
        next += 1;
        if let Some(event) = event.visible() {
            assert_eq!(event.dataset.as_deref(), Some("orders"), "{event:?}");
            seen_orders = true;
        }
    }
    assert!(seen_orders, "the write to its dataset came through");
    assert!(
        next > start + 2,
        "the write to `users` came as a hidden number"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn connection_methods_refuse_callers_without_the_right() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(EngineConfig::new(dir.path().join("data")))
        .await
        .expect("engine opens");
    let viewer = user(Role::Viewer);
    let editor = user(Role::Editor);
    let anonymous = Principal::anonymous(ClientInfo::through(Door::Rest));
    let config = serde_json::json!({ "path": "/nowhere.db" });
    let new = || NewConnection {
        name: "shop".into(),
        kind: "sqlite".into(),
        description: String::new(),
        config: config.clone(),
    };

    // Managing connections is for admins.
    refused(
        "create_connection",
        engine.create_connection(&editor, new()).await,
    );
    refused(
        "update_connection",
        engine
            .update_connection(&editor, "shop", ConnectionPatch::default())
            .await,
    );
    refused(
        "delete_connection",
        engine.delete_connection(&editor, "shop").await,
    );
    refused(
        "test_connection_config",
        engine
            .test_connection_config(&editor, "sqlite", &config)
            .await,
    );
    // Using one needs the editor role.
    refused(
        "test_connection",
        engine.test_connection(&viewer, "shop").await,
    );
    refused("discover", engine.discover(&viewer, "shop").await);
    refused(
        "put_field_mappings",
        engine
            .put_field_mappings(&viewer, "shop", "t", Vec::new(), None)
            .await,
    );
    refused(
        "delete_field_mappings",
        engine.delete_field_mappings(&viewer, "shop", "t").await,
    );
    // Nobody unidentified sees them.
    refused(
        "list_connections",
        engine.list_connections(&anonymous).await,
    );
    refused("connection", engine.connection(&anonymous, "shop").await);
    refused("connector_types", engine.connector_types(&anonymous));
    refused(
        "connector_spec",
        engine.connector_spec(&anonymous, "sqlite"),
    );
    refused(
        "stream_schema_history",
        engine.stream_schema_history(&anonymous, "shop", "t").await,
    );
    refused(
        "field_mappings",
        engine.field_mappings(&anonymous, "shop", "t").await,
    );
    engine.shutdown().await;
}
