//! service1 as the docs show it: a tonic server with `ServerTlsConfig`
//! (mTLS) for ProcessName, and an axum route for `GET /api/v1/name`.

use std::collections::HashMap;

use axum::{extract::Query, routing::get, Json, Router};
use baseline::proto::{
    service1_server::{Service1, Service1Server},
    ProcessNameRequest, ProcessNameResponse,
};
use tonic::{
    transport::{Certificate, Identity, Server, ServerTlsConfig},
    Request, Response, Status,
};

struct Names;

#[tonic::async_trait]
impl Service1 for Names {
    async fn process_name(
        &self,
        request: Request<ProcessNameRequest>,
    ) -> Result<Response<ProcessNameResponse>, Status> {
        let name = request.into_inner().name;
        tracing::info!(method = "ProcessName", "grpc request");
        // No ObjectId, as the original service1 sends none.
        Ok(Response::new(ProcessNameResponse { name: name.to_uppercase(), id: None }))
    }
}

async fn name(Query(query): Query<HashMap<String, String>>) -> Json<serde_json::Value> {
    let name = query.get("name").cloned().unwrap_or_default();
    tracing::info!(path = "/api/v1/name", "http request");
    Json(serde_json::json!({ "name": name.to_uppercase() }))
}

fn main() {
    let _logs = baseline::init_logs();
    baseline::run(async {
        let identity = Identity::from_pem(baseline::pem("TLS_CERT").await, baseline::pem("TLS_KEY").await);
        let ca = Certificate::from_pem(baseline::pem("TLS_CA").await);
        let tls = ServerTlsConfig::new().identity(identity).client_ca_root(ca);
        let grpc = Server::builder()
            .tls_config(tls)
            .expect("valid TLS config")
            .add_service(Service1Server::new(Names))
            .serve(baseline::addr("GRPC_PORT", "50051"));
        let rest = async {
            let listener = tokio::net::TcpListener::bind(baseline::addr("PORT", "8080")).await.expect("bind");
            axum::serve(listener, Router::new().route("/api/v1/name", get(name))).await
        };
        let (grpc, rest) = tokio::join!(grpc, rest);
        grpc.expect("gRPC server");
        rest.expect("REST server");
    });
}
