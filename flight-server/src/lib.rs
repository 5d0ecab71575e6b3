//! Basin's Arrow Flight SQL service: the analysts' door (ADBC, JDBC, pyarrow).
//!
//! - Queries: `GetFlightInfo(CommandStatementQuery)` plans the statement and
//!   answers its schema; the ticket carries the statement, and `DoGet` streams
//!   the result batch by batch (HTTP/2 flow control is the backpressure).
//!   `CancelFlightInfo` or a dropped connection stops it.
//! - Prepared statements with positional parameters (`$1` or `?`), bound by `DoPut`.
//! - Writes: `CommandStatementIngest` (ADBC's `adbc_ingest`) and
//!   `CREATE TABLE … AS SELECT` / `INSERT INTO …`, each one atomic Delta version.
//! - Metadata: catalogs, schemas, tables, table types, SQL info, XDBC types, keys.
//! - Plain Flight: `ListFlights` lists datasets, path descriptors `[dataset]` or
//!   `[dataset, version]` stream one, `GetSchema` answers any descriptor.
//!
//! Every call but `Handshake` needs the access token as a bearer token (or
//! Basic credentials); the handshake trades Basic credentials for the bearer.
//! This crate only translates: the engine does the work.

mod auth;
mod metadata;
mod service;
mod status;
mod tickets;
mod upload;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, SchemaResult, Ticket,
};
use basin_engine::Engine;
use futures::Stream;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

pub use service::BasinFlightSql;
pub use status::grpc_code;

use status::OrStatus;
use tickets::DatasetTicket;

/// Largest message a client may send (one `DoPut` batch); larger batches must be split.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// A certificate chain and private key, PEM-encoded, for TLS.
#[derive(Clone)]
pub struct TlsIdentity {
    /// The certificate chain.
    pub cert_pem: Vec<u8>,
    /// The private key.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

/// Serves Flight SQL on `listener` until `shutdown` completes.
pub async fn serve(
    engine: Engine,
    listener: TcpListener,
    tls: Option<TlsIdentity>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(
            ServerTlsConfig::new().identity(Identity::from_pem(tls.cert_pem, tls.key_pem)),
        )?;
    }
    builder
        .add_service(service(engine))
        // Without TCP_NODELAY a small answer (a point lookup, a prepared
        // statement's schema) waits out the client's delayed ACK, about 40 ms
        // on Linux. The builder's `tcp_nodelay` does not apply to a listener
        // passed in, so it is set here.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}

/// The gRPC service, for embedding in another tonic server.
pub fn service(engine: Engine) -> FlightServiceServer<BasinFlight> {
    FlightServiceServer::new(BasinFlight {
        sql: Arc::new(BasinFlightSql::new(engine)),
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(usize::MAX)
}

/// The Flight service: authenticates each call, answers the plain Flight calls
/// Flight SQL leaves open, and hands the rest to [`BasinFlightSql`].
pub struct BasinFlight {
    sql: Arc<BasinFlightSql>,
}

type Inner = BasinFlightSql;
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl BasinFlight {
    /// Authenticates the call and hands the caller on in the request's extensions.
    async fn authenticate<T>(&self, mut request: Request<T>) -> Result<Request<T>, Status> {
        let credentials = auth::credentials(request.metadata())?;
        let principal = self
            .sql
            .engine
            .authenticate(credentials.as_ref(), &auth::client(&request))
            .await
            .or_status()?;
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}

#[tonic::async_trait]
impl FlightService for BasinFlight {
    type HandshakeStream = BoxStream<HandshakeResponse>;
    type ListFlightsStream = BoxStream<FlightInfo>;
    type DoGetStream = <Inner as FlightService>::DoGetStream;
    type DoPutStream = <Inner as FlightService>::DoPutStream;
    type DoActionStream = <Inner as FlightService>::DoActionStream;
    type ListActionsStream = <Inner as FlightService>::ListActionsStream;
    type DoExchangeStream = <Inner as FlightService>::DoExchangeStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        FlightService::handshake(&*self.sql, request).await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        let request = self.authenticate(request).await?;
        let principal = auth::principal(&request)?;
        // A non-empty criteria expression filters dataset names by substring.
        let filter = String::from_utf8_lossy(&request.get_ref().expression).into_owned();
        let names = self
            .sql
            .engine
            .readable_dataset_names(&principal, &filter)
            .await
            .or_status()?;
        let mut infos = Vec::new();
        for name in names {
            let descriptor = FlightDescriptor::new_path(vec![name.clone()]);
            let ticket = DatasetTicket {
                name,
                version: None,
            };
            match self
                .sql
                .dataset_flight_info(&principal, ticket, descriptor)
                .await
            {
                Ok(info) => infos.push(Ok(info)),
                // Deleted between the listing and now.
                Err(status) if status.code() == tonic::Code::NotFound => {}
                Err(status) => return Err(status),
            }
        }
        Ok(Response::new(Box::pin(futures::stream::iter(infos))))
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let request = self.authenticate(request).await?;
        FlightService::get_flight_info(&*self.sql, request).await
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        let request = self.authenticate(request).await?;
        FlightService::poll_flight_info(&*self.sql, request).await
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        let request = self.authenticate(request).await?;
        // Every descriptor GetFlightInfo answers has its schema there.
        let info = FlightService::get_flight_info(&*self.sql, request).await?;
        Ok(Response::new(SchemaResult {
            schema: info.into_inner().schema,
        }))
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let request = self.authenticate(request).await?;
        FlightService::do_get(&*self.sql, request).await
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let request = self.authenticate(request).await?;
        FlightService::do_put(&*self.sql, request).await
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let request = self.authenticate(request).await?;
        FlightService::do_action(&*self.sql, request).await
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let request = self.authenticate(request).await?;
        FlightService::list_actions(&*self.sql, request).await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        let request = self.authenticate(request).await?;
        FlightService::do_exchange(&*self.sql, request).await
    }
}
