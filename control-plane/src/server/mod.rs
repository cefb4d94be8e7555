//! The gRPC listener: one port per replica, mutual TLS, four services.

pub mod api;
pub mod auth;
pub mod cluster;
pub mod raft_svc;
pub mod streams;

use crate::replica::Replica;
use futures::StreamExt;
use rk_client::coalesce::DeferredFlush;
use rk_proto::v1::api_server::ApiServer;
use rk_proto::v1::cluster_server::ClusterServer;
use rk_proto::v1::metrics_server::MetricsServer;
use rk_proto::v1::raft_server::RaftServer;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

/// PEM material the server presents and trusts.
pub struct ServerTls {
    /// The replica's certificate followed by the CA certificate, so joiners
    /// can pin the CA from the handshake alone.
    pub chain_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

/// Serves until `shutdown` is cancelled.
pub async fn serve(
    replica: Arc<Replica>,
    listener: tokio::net::TcpListener,
    tls: ServerTls,
    serve_append_stream: bool,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let tls_config = ServerTlsConfig::new()
        .identity(Identity::from_pem(&tls.chain_pem, &tls.key_pem))
        .client_ca_root(Certificate::from_pem(&tls.ca_pem))
        // A certificate is optional at the TLS layer only so that a joiner
        // holding just a token can reach Join; every other call checks for
        // a verified client certificate (see auth.rs). A certificate from
        // another CA still fails the handshake.
        .client_auth_optional(true);
    let api = ApiServer::new(api::ApiSvc {
        replica: replica.clone(),
        shutdown: shutdown.clone(),
    })
    .max_decoding_message_size(64 << 20)
    .max_encoding_message_size(256 << 20);
    let raft = RaftServer::new(raft_svc::RaftSvc {
        replica: replica.clone(),
        serve_append_stream,
        shutdown: shutdown.clone(),
    })
    .max_decoding_message_size(1 << 30)
    .max_encoding_message_size(1 << 30);
    let metrics = MetricsServer::new(streams::MetricsSvc {
        replica: replica.clone(),
    });
    let cluster = ClusterServer::new(cluster::ClusterSvc { replica });
    // Small request/response messages must not wait for Nagle's algorithm
    // (40 ms with delayed ACKs): every accepted socket gets TCP_NODELAY.
    let incoming = tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        // Responses of concurrent calls leave in one write (see
        // rk_client::coalesce); TLS sits on top of this.
        .map(|accepted| accepted.map(DeferredFlush::new));
    Server::builder()
        .tls_config(tls_config)?
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
        .add_service(api)
        .add_service(raft)
        .add_service(cluster)
        .add_service(metrics)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
}
