//! service2 as the docs show it: an axum route for
//! `GET /api/v1/say-hello` that calls service1 through a tonic `Channel`
//! with `ClientTlsConfig` (mTLS).

use std::collections::HashMap;

use axum::{extract::Query, extract::State, http::StatusCode, routing::get, Json, Router};
use baseline::proto::{service1_client::Service1Client, ProcessNameRequest};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

async fn say_hello(
    State(client): State<Service1Client<Channel>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<String>, StatusCode> {
    let name = query.get("name").cloned().unwrap_or_default();
    let reply = client.clone().process_name(ProcessNameRequest { name }).await;
    tracing::info!(path = "/api/v1/say-hello", ok = reply.is_ok(), "http request");
    let name = reply.map_err(|_| StatusCode::BAD_GATEWAY)?.into_inner().name;
    Ok(Json(format!("Hello, {name}!")))
}

fn main() {
    let _logs = baseline::init_logs();
    baseline::run(async {
        let identity = Identity::from_pem(baseline::pem("TLS_CERT").await, baseline::pem("TLS_KEY").await);
        let ca = Certificate::from_pem(baseline::pem("TLS_CA").await);
        let tls = ClientTlsConfig::new()
            .ca_certificate(ca)
            .identity(identity)
            .domain_name(baseline::env("TLS_SERVER_NAME", "service1"));
        let target = baseline::env("SERVICE1_CHANNEL", "127.0.0.1:50051");
        let channel = Channel::from_shared(format!("https://{target}"))
            .expect("a valid target")
            .tls_config(tls)
            .expect("valid TLS config")
            .connect_lazy();
        let app =
            Router::new().route("/api/v1/say-hello", get(say_hello)).with_state(Service1Client::new(channel));
        let listener = tokio::net::TcpListener::bind(baseline::addr("PORT", "8081")).await.expect("bind");
        axum::serve(listener, app).await.expect("REST server");
    });
}
