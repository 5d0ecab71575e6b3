//! The Flight SQL commands, each translated to one engine call.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandGetCatalogs, CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys,
    CommandGetImportedKeys, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandGetXdbcTypeInfo, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightDescriptor,
    FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc,
    Ticket,
};
use basin_engine::Engine;
use basin_engine::datasets::TimeTravel;
use basin_engine::datasets::write::{IfExists, IfMissing, StreamWriteMode};
use basin_engine::identity::{Credentials, Principal};
use basin_engine::sql::query::QueryRequest;
use basin_engine::sql::writes::StatementKind;
use basin_sql::{CATALOG_NAME, SCHEMA_NAME};
use datafusion::common::ScalarValue;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::principal;
use crate::metadata;
use crate::status::{OrStatus, stream_status};
use crate::tickets::{DatasetTicket, QueryTicket};

type DoGetStream = <BasinFlightSql as FlightService>::DoGetStream;

/// How long an unused prepared statement lives.
const PREPARED_IDLE: Duration = Duration::from_secs(3600);
/// Most prepared statements held at once (across clients).
const MAX_PREPARED: usize = 10_000;
/// How long a cancellation waits for its query to start.
const CANCEL_MEMORY: Duration = Duration::from_secs(600);

/// The Flight SQL service.
pub struct BasinFlightSql {
    pub(crate) engine: Engine,
    sql_info: SqlInfoData,
    xdbc_types: XdbcTypeInfoData,
    prepared: Mutex<HashMap<String, Prepared>>,
    running: Arc<Mutex<RunningQueries>>,
}

type RunningQueries = HashMap<String, (CancellationToken, Instant)>;

/// A prepared statement: its SQL, shapes and bound parameter rows.
struct Prepared {
    /// Who created it: only they may bind, run or close it.
    owner: String,
    sql: String,
    kind: StatementKind,
    dataset_schema: SchemaRef,
    bound: Vec<Vec<ScalarValue>>,
    last_used: Instant,
}

/// The one-column result of a write run as a query.
fn rows_written_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "rows_written",
        DataType::Int64,
        false,
    )]))
}

impl BasinFlightSql {
    /// A service over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            sql_info: metadata::sql_info(),
            xdbc_types: metadata::xdbc_type_info(),
            prepared: Mutex::new(HashMap::new()),
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The shape of a statement's result and its parameters.
    async fn describe(
        &self,
        principal: &Principal,
        sql: &str,
    ) -> Result<(StatementKind, SchemaRef, SchemaRef), Status> {
        let kind = self.engine.statement_kind(sql).or_status()?;
        match kind {
            StatementKind::Query => {
                let shape = self
                    .engine
                    .describe_query(principal, sql)
                    .await
                    .or_status()?;
                Ok((kind, shape.schema, shape.parameters))
            }
            StatementKind::Write => {
                let parameters = self
                    .engine
                    .describe_write(principal, sql)
                    .await
                    .or_status()?;
                Ok((kind, rows_written_schema(), parameters))
            }
        }
    }

    fn query_flight_info(
        &self,
        ticket: QueryTicket,
        schema: &Schema,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        let handle = ticket.encode_to_vec();
        let ticket = TicketStatementQuery {
            statement_handle: handle.into(),
        };
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(e.to_string()))
            .map(|info| info.with_endpoint(endpoint).with_descriptor(descriptor))
    }

    /// Runs a query ticket: a query streams its rows, a write returns its count.
    async fn run_ticket(
        &self,
        principal: &Principal,
        ticket: QueryTicket,
    ) -> Result<DoGetStream, Status> {
        let params = match &ticket.prepared_handle {
            Some(handle) => {
                let mut prepared = self.prepared.lock().expect("prepared map");
                let entry = prepared
                    .get_mut(handle)
                    .filter(|p| p.owner == principal.username)
                    .ok_or_else(|| Status::not_found("prepared statement is closed or unknown"))?;
                entry.last_used = Instant::now();
                match entry.bound.as_slice() {
                    [] => Vec::new(),
                    [row] => row.clone(),
                    _ => {
                        return Err(Status::invalid_argument(
                            "a query takes one row of parameters; bind one row",
                        ));
                    }
                }
            }
            None => Vec::new(),
        };
        let kind = self.engine.statement_kind(&ticket.sql).or_status()?;
        // From here on the guard unregisters the query however this ends.
        let (token, guard) = self.start_running(&ticket.id)?;
        let stream = match kind {
            StatementKind::Query => {
                let request = QueryRequest {
                    sql: ticket.sql.clone(),
                    params,
                    ..Default::default()
                };
                let run = self.engine.query(principal, request);
                tokio::select! {
                    stream = run => stream.or_status()?,
                    () = token.cancelled() => return Err(Status::cancelled("query canceled")),
                }
            }
            StatementKind::Write => {
                let run = self.engine.execute_write(principal, &ticket.sql, params);
                let outcome = tokio::select! {
                    outcome = run => outcome,
                    () = token.cancelled() => return Err(Status::cancelled("query canceled")),
                };
                let outcome = outcome.or_status()?;
                count_stream(outcome.rows_written)
            }
        };
        Ok(self.encode(stream, Some((token, guard))))
    }

    /// Registers a query so `CancelFlightInfo` can stop it; refuses one canceled before it started.
    fn start_running(&self, id: &str) -> Result<(CancellationToken, RunningGuard), Status> {
        let mut running = self.running.lock().expect("running map");
        running.retain(|_, (token, at)| !token.is_cancelled() || at.elapsed() < CANCEL_MEMORY);
        if let Some((token, _)) = running.get(id)
            && token.is_cancelled()
        {
            return Err(Status::cancelled("query canceled"));
        }
        let token = CancellationToken::new();
        running.insert(id.to_owned(), (token.clone(), Instant::now()));
        let guard = RunningGuard {
            id: id.to_owned(),
            running: self.running.clone(),
        };
        Ok((token, guard))
    }

    /// Cancels the queries of a FlightInfo's endpoints (running or not yet started).
    fn cancel(&self, info: &FlightInfo) -> CancelStatus {
        let mut any = false;
        let mut running = self.running.lock().expect("running map");
        for endpoint in &info.endpoint {
            let Some(ticket) = &endpoint.ticket else {
                continue;
            };
            let Some(id) = query_id_of(ticket) else {
                continue;
            };
            let (token, _) = running
                .entry(id)
                .or_insert_with(|| (CancellationToken::new(), Instant::now()));
            token.cancel();
            any = true;
        }
        if any {
            CancelStatus::Cancelled
        } else {
            CancelStatus::NotCancellable
        }
    }

    /// Flight data for a stream of batches, ending early (CANCELLED) when `cancel` fires.
    fn encode(
        &self,
        stream: SendableRecordBatchStream,
        cancel: Option<(CancellationToken, RunningGuard)>,
    ) -> DoGetStream {
        let schema = stream.schema();
        let batches = stream.map_err(|e| FlightError::ExternalError(Box::new(e)));
        let batches: BatchStream = match cancel {
            Some((token, guard)) => cancellable(Box::pin(batches), token, guard),
            None => Box::pin(batches),
        };
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(stream_status);
        Box::pin(flight)
    }

    /// Runs `f` on the caller's prepared statement; another caller's is "not found".
    fn prepared_entry<T>(
        &self,
        principal: &Principal,
        handle: &[u8],
        f: impl FnOnce(&mut Prepared) -> T,
    ) -> Result<T, Status> {
        let key = String::from_utf8_lossy(handle).into_owned();
        let mut prepared = self.prepared.lock().expect("prepared map");
        let entry = prepared
            .get_mut(&key)
            .filter(|p| p.owner == principal.username)
            .ok_or_else(|| Status::not_found("prepared statement is closed or unknown"))?;
        entry.last_used = Instant::now();
        Ok(f(entry))
    }

    async fn batches_of(
        &self,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<Vec<RecordBatch>, Status> {
        let stream = request
            .into_inner()
            .map_err(|e| FlightError::Tonic(Box::new(e)));
        FlightRecordBatchStream::new_from_flight_data(stream)
            .try_collect()
            .await
            .map_err(stream_status)
    }
}

type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch, FlightError>> + Send>>;

/// Removes a query from the running map when its stream ends or is dropped.
struct RunningGuard {
    id: String,
    running: Arc<Mutex<RunningQueries>>,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if let Ok(mut running) = self.running.lock() {
            running.remove(&self.id);
        }
    }
}

/// Ends `stream` with CANCELLED as soon as `token` fires; dropping it stops the query.
fn cancellable(stream: BatchStream, token: CancellationToken, guard: RunningGuard) -> BatchStream {
    Box::pin(futures::stream::unfold(
        Some((stream, token, guard)),
        |state| async move {
            let (mut stream, token, guard) = state?;
            tokio::select! {
                biased;
                () = token.cancelled() => {
                    let canceled = Status::cancelled("query canceled");
                    Some((Err(FlightError::Tonic(Box::new(canceled))), None))
                }
                item = stream.next() => item.map(|item| (item, Some((stream, token, guard)))),
            }
        },
    ))
}

fn count_stream(rows: u64) -> SendableRecordBatchStream {
    let schema = rows_written_schema();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int64Array::from(vec![rows as i64]))],
    );
    let batch = batch.map_err(datafusion::error::DataFusionError::from);
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::once(async move { batch }),
    ))
}

fn query_id_of(ticket: &Ticket) -> Option<String> {
    let any = Any::decode(&*ticket.ticket).ok()?;
    let statement: TicketStatementQuery = any.unpack().ok()??;
    QueryTicket::decode(&*statement.statement_handle)
        .ok()
        .map(|t| t.id)
}

/// Parameter rows of a bound batch, one `Vec` per row.
fn parameter_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<ScalarValue>>, Status> {
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let values = batch
                .columns()
                .iter()
                .map(|column| ScalarValue::try_from_array(column, row))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Status::invalid_argument(format!("invalid parameter: {e}")))?;
            rows.push(values);
        }
    }
    Ok(rows)
}

fn schema_bytes(schema: &Schema) -> Result<prost::bytes::Bytes, Status> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(message.0)
}

fn batch_stream<E: std::fmt::Display>(
    batch: Result<RecordBatch, E>,
) -> Result<SendableRecordBatchStream, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    let schema = batch.schema();
    Ok(Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::once(async move { Ok(batch) }),
    )))
}

fn empty_stream(schema: SchemaRef) -> SendableRecordBatchStream {
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::empty(),
    ))
}

fn metadata_info(
    schema: &Schema,
    command: impl ProstMessageExt,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let ticket = Ticket::new(command.as_any().encode_to_vec());
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

fn dataset_target(command: &CommandStatementIngest) -> Result<String, Status> {
    if command.temporary {
        return Err(Status::invalid_argument(
            "temporary tables are not supported; datasets are Delta tables",
        ));
    }
    if command.transaction_id.is_some() {
        return Err(Status::invalid_argument("transactions are not supported"));
    }
    if command
        .catalog
        .as_deref()
        .is_some_and(|c| c != CATALOG_NAME)
        || command.schema.as_deref().is_some_and(|s| s != SCHEMA_NAME)
    {
        return Err(Status::invalid_argument(format!(
            "datasets live in {CATALOG_NAME}.{SCHEMA_NAME}"
        )));
    }
    Ok(command.table.clone())
}

#[tonic::async_trait]
impl FlightSqlService for BasinFlightSql {
    type FlightService = BasinFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let client = crate::auth::client(&request);
        let credentials = match crate::auth::credentials(request.metadata())? {
            Some(credentials) => credentials,
            None => {
                // Some clients send `BasicAuth` in the handshake payload instead of a header.
                let mut stream = request.into_inner();
                let first = stream
                    .message()
                    .await?
                    .ok_or_else(|| Status::unauthenticated("credentials required"))?;
                let basic = arrow_flight::BasicAuth::decode(&*first.payload)
                    .map_err(|_| Status::unauthenticated("credentials required"))?;
                Credentials::Basic {
                    username: basic.username,
                    password: basic.password,
                }
            }
        };
        let Credentials::Basic { username, password } = &credentials else {
            return Err(Status::unauthenticated(
                "unauthenticated: the handshake takes a username and password (Basic)",
            ));
        };
        let token = self
            .engine
            .login(username, password, &client)
            .await
            .or_status()?
            .token;
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(response)])));
        let header = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::internal("token is not a valid header"))?;
        response.metadata_mut().insert("authorization", header);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let principal = principal(&request)?;
        let (_, schema, _) = self.describe(&principal, &query.query).await?;
        let ticket = QueryTicket::new(query.query, None);
        let info = self.query_flight_info(ticket, &schema, request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        command: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let principal = principal(&request)?;
        let handle = String::from_utf8_lossy(&command.prepared_statement_handle).into_owned();
        let (sql, schema) =
            self.prepared_entry(&principal, &command.prepared_statement_handle, |p| {
                (p.sql.clone(), p.dataset_schema.clone())
            })?;
        let ticket = QueryTicket::new(sql, Some(handle));
        let info = self.query_flight_info(ticket, &schema, request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        metadata_info(&schema, query, request.into_inner())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata_info(&schema, query, request.into_inner())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata_info(&schema, query, request.into_inner())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        metadata_info(&schema, query, request.into_inner())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.sql_info).schema();
        metadata_info(&schema, query, request.into_inner())
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(
            &metadata::primary_keys_schema(),
            query,
            request.into_inner(),
        )
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(
            &metadata::foreign_keys_schema(),
            query,
            request.into_inner(),
        )
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(
            &metadata::foreign_keys_schema(),
            query,
            request.into_inner(),
        )
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata_info(
            &metadata::foreign_keys_schema(),
            query,
            request.into_inner(),
        )
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = self.xdbc_types.schema();
        metadata_info(&schema, query, request.into_inner())
    }

    async fn get_flight_info_fallback(
        &self,
        _command: arrow_flight::sql::Command,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let principal = principal(&request)?;
        let descriptor = request.into_inner();
        if descriptor.r#type != arrow_flight::flight_descriptor::DescriptorType::Path as i32 {
            return Err(Status::invalid_argument("unknown Flight SQL command"));
        }
        let ticket = DatasetTicket::from_path(&descriptor.path).or_status()?;
        self.dataset_flight_info(&principal, ticket, descriptor)
            .await
            .map(Response::new)
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let principal = principal(&request)?;
        let ticket = QueryTicket::decode(&*ticket.statement_handle)
            .map_err(|_| Status::invalid_argument("malformed statement ticket"))?;
        Ok(Response::new(self.run_ticket(&principal, ticket).await?))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let principal = principal(&request)?;
        let mut builder = query.into_builder();
        for (catalog, _) in self.engine.sql_schemas(&principal).await.or_status()? {
            builder.append(catalog);
        }
        Ok(Response::new(
            self.encode(batch_stream(builder.build())?, None),
        ))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let principal = principal(&request)?;
        let mut builder = query.into_builder();
        for (catalog, schemas) in self.engine.sql_schemas(&principal).await.or_status()? {
            for schema in schemas {
                builder.append(&catalog, schema);
            }
        }
        Ok(Response::new(
            self.encode(batch_stream(builder.build())?, None),
        ))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let principal = principal(&request)?;
        let include_schema = query.include_schema;
        let mut builder = query.into_builder();
        let empty = Schema::empty();
        let tables = self
            .engine
            .sql_tables(&principal, include_schema)
            .await
            .or_status()?;
        for table in tables {
            let columns = table.columns.as_deref().unwrap_or(&empty);
            builder
                .append(
                    &table.catalog,
                    &table.schema,
                    &table.name,
                    table.table_type,
                    columns,
                )
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        Ok(Response::new(
            self.encode(batch_stream(builder.build())?, None),
        ))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append("TABLE");
        builder.append("VIEW");
        Ok(Response::new(
            self.encode(batch_stream(builder.build())?, None),
        ))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let batch = query.into_builder(&self.sql_info).build();
        Ok(Response::new(self.encode(batch_stream(batch)?, None)))
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        // Datasets declare no keys.
        Ok(Response::new(self.encode(
            empty_stream(metadata::primary_keys_schema()),
            None,
        )))
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(Response::new(self.encode(
            empty_stream(metadata::foreign_keys_schema()),
            None,
        )))
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(Response::new(self.encode(
            empty_stream(metadata::foreign_keys_schema()),
            None,
        )))
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(Response::new(self.encode(
            empty_stream(metadata::foreign_keys_schema()),
            None,
        )))
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let batch = query.into_builder(&self.xdbc_types).build();
        Ok(Response::new(self.encode(batch_stream(batch)?, None)))
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DoGetStream>, Status> {
        let principal = principal(&request)?;
        let ticket = DatasetTicket::from_any(&message)
            .ok_or_else(|| Status::invalid_argument("unknown ticket"))?;
        let at = ticket.version.map(TimeTravel::Version);
        let dataset = self
            .engine
            .read_dataset(&principal, &ticket.name, at)
            .await
            .or_status()?;
        Ok(Response::new(self.encode(dataset, None)))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let principal = principal(&request)?;
        if command.transaction_id.is_some() {
            return Err(Status::invalid_argument("transactions are not supported"));
        }
        if self.engine.statement_kind(&command.query).or_status()? == StatementKind::Query {
            return Err(Status::invalid_argument(
                "invalid_input: a query returns rows; run it with CommandStatementQuery",
            ));
        }
        let outcome = self
            .engine
            .execute_write(&principal, &command.query, Vec::new())
            .await;
        Ok(outcome.or_status()?.rows_written as i64)
    }

    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        use arrow_flight::sql::{TableExistsOption, TableNotExistOption};
        let principal = principal(&request)?;
        let name = dataset_target(&command)?;
        let options = command.table_definition_options.unwrap_or_default();
        let mode = StreamWriteMode {
            if_exists: match TableExistsOption::try_from(options.if_exists).unwrap_or_default() {
                TableExistsOption::Append => IfExists::Append,
                TableExistsOption::Replace => IfExists::Replace,
                TableExistsOption::Fail | TableExistsOption::Unspecified => IfExists::Fail,
            },
            if_missing: match TableNotExistOption::try_from(options.if_not_exist)
                .unwrap_or_default()
            {
                TableNotExistOption::Fail => IfMissing::Fail,
                TableNotExistOption::Create | TableNotExistOption::Unspecified => IfMissing::Create,
            },
        };
        let stream = request
            .into_inner()
            .map_err(|e| FlightError::Tonic(Box::new(e)));
        let mut decoded = FlightRecordBatchStream::new_from_flight_data(stream);
        // The schema arrives with (or before) the first batch.
        let first = decoded.next().await.transpose().map_err(stream_status)?;
        let schema = decoded
            .schema()
            .cloned()
            .or_else(|| first.as_ref().map(RecordBatch::schema))
            .ok_or_else(|| Status::invalid_argument("the stream carried no schema"))?;
        let rest = decoded
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(stream_status(e))));
        let batches = futures::stream::iter(first.map(Ok)).chain(rest);
        let (pump, confirmed) = crate::upload::confirmed_end(batches);
        let input: SendableRecordBatchStream =
            Box::pin(RecordBatchStreamAdapter::new(schema, confirmed));
        let write = self.engine.write_stream(&principal, &name, mode, input);
        tokio::pin!(write);
        // A write that fails early does not wait for the rest of the upload.
        let outcome = tokio::select! {
            outcome = &mut write => outcome,
            () = pump => write.await,
        };
        Ok(outcome.or_status()?.rows_written as i64)
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let principal = principal(&request)?;
        let batches = self.batches_of(request).await?;
        let rows = parameter_rows(&batches)?;
        self.prepared_entry(&principal, &query.prepared_statement_handle, |p| {
            p.bound = rows
        })?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn do_put_prepared_statement_update(
        &self,
        command: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let principal = principal(&request)?;
        let batches = self.batches_of(request).await?;
        let sent = parameter_rows(&batches)?;
        let (sql, kind, bound) =
            self.prepared_entry(&principal, &command.prepared_statement_handle, |p| {
                (p.sql.clone(), p.kind, p.bound.clone())
            })?;
        if kind == StatementKind::Query {
            return Err(Status::invalid_argument(
                "invalid_input: a query returns rows; execute it as a query",
            ));
        }
        let rows = if !sent.is_empty() {
            sent
        } else if !bound.is_empty() {
            bound
        } else {
            vec![Vec::new()]
        };
        let mut total = 0_i64;
        for params in rows {
            let outcome = self.engine.execute_write(&principal, &sql, params).await;
            total += outcome.or_status()?.rows_written as i64;
        }
        Ok(total)
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        if query.transaction_id.is_some() {
            return Err(Status::invalid_argument("transactions are not supported"));
        }
        let principal = principal(&request)?;
        let (kind, dataset_schema, parameter_schema) =
            self.describe(&principal, &query.query).await?;
        let result = ActionCreatePreparedStatementResult {
            prepared_statement_handle: Default::default(),
            dataset_schema: schema_bytes(&dataset_schema)?,
            parameter_schema: schema_bytes(&parameter_schema)?,
        };
        let handle = uuid::Uuid::new_v4().to_string();
        let mut prepared = self.prepared.lock().expect("prepared map");
        prepared.retain(|_, p| p.last_used.elapsed() < PREPARED_IDLE);
        if prepared.len() >= MAX_PREPARED {
            return Err(Status::resource_exhausted(format!(
                "{MAX_PREPARED} prepared statements are open; close some first"
            )));
        }
        prepared.insert(
            handle.clone(),
            Prepared {
                owner: principal.username.clone(),
                sql: query.query,
                kind,
                dataset_schema,
                bound: Vec::new(),
                last_used: Instant::now(),
            },
        );
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            ..result
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let principal = principal(&request)?;
        let key = String::from_utf8_lossy(&query.prepared_statement_handle).into_owned();
        let mut prepared = self.prepared.lock().expect("prepared map");
        if prepared
            .get(&key)
            .is_some_and(|p| p.owner == principal.username)
        {
            prepared.remove(&key);
        }
        Ok(())
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        _request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        let info = FlightInfo::decode(&*query.info)
            .map_err(|_| Status::invalid_argument("malformed FlightInfo"))?;
        // CancelResult (not re-exported) numbers its values as CancelStatus does.
        Ok(ActionCancelQueryResult {
            result: self.cancel(&info) as i32,
        })
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let action = request.into_inner();
        if action.r#type != "CancelFlightInfo" {
            return Err(Status::invalid_argument(format!(
                "unknown action `{}`",
                action.r#type
            )));
        }
        let cancel = CancelFlightInfoRequest::decode(&*action.body)
            .map_err(|_| Status::invalid_argument("malformed CancelFlightInfoRequest"))?;
        let info = cancel
            .info
            .ok_or_else(|| Status::invalid_argument("CancelFlightInfoRequest without info"))?;
        let result = CancelFlightInfoResult {
            status: self.cancel(&info) as i32,
        };
        let body = arrow_flight::Result {
            body: result.encode_to_vec().into(),
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(body)]))))
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<arrow_flight::ActionType, Status>>> {
        Some(vec![Ok(arrow_flight::ActionType {
            r#type: "CancelFlightInfo".into(),
            description: "Cancel a query by its FlightInfo".into(),
        })])
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

impl BasinFlightSql {
    /// A FlightInfo for a dataset (path descriptor `[name]` or `[name, version]`).
    pub(crate) async fn dataset_flight_info(
        &self,
        principal: &Principal,
        ticket: DatasetTicket,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        let shape = self
            .engine
            .dataset_shape(
                principal,
                &ticket.name,
                ticket.version.map(TimeTravel::Version),
            )
            .await
            .or_status()?;
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.to_any().encode_to_vec()));
        let info = FlightInfo::new()
            .try_with_schema(&shape.schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor)
            .with_total_records(shape.total_rows)
            .with_total_bytes(shape.total_bytes);
        Ok(info)
    }
}
