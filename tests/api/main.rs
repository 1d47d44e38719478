//! service1 and service2 running in this process on 127.0.0.1 port 0.
//! `TEST_LOG=1` prints the services' log lines.

mod call_slots;
mod connections;
mod gray_failure;
mod grpc;
mod health;
mod hostile_h2;
mod limits;
mod metrics;
mod name;
mod panics;
mod probes;
mod reflection;
mod request_id;
mod say_hello;
mod setting_ranges;
mod shutdown;
mod tls;
mod upstream_headers;

use std::time::Duration;

use serde_json::Value;

/// A plain HTTP client with a bound on every request, so a hung server
/// fails the test instead of hanging it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client builds")
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub request_id: String,
    pub body: Value,
}

pub async fn get(url: &str, request_id: Option<&str>) -> Reply {
    get_with(client().get(url), request_id).await
}

pub async fn get_with(request: reqwest::RequestBuilder, request_id: Option<&str>) -> Reply {
    let request = match request_id {
        Some(id) => request.header("x-request-id", id),
        None => request,
    };
    let response = request.send().await.expect("the server answers");
    let header =
        |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (status, content_type, request_id) =
        (response.status().as_u16(), header("content-type"), header("x-request-id"));
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"));
    Reply { status, content_type, request_id, body }
}

/// A request id unique to one test, so its log lines can be told apart.
pub fn unique_id(test: &str) -> String {
    format!("{test}-{}", std::process::id())
}
