//! service2's REST API: `GET /api/v1/say-hello?name=...` → `"Hello, NAME!"`.

use axum::{
    extract::{RawQuery, State},
    routing::get,
    Extension, Json, Router,
};
use observability::Observability;
use serving::ApiError;
use settings::HttpLimits;
use wire::{names, query, RequestId};

use crate::upstream::Service1Client;

#[derive(Clone)]
struct AppState {
    service1: Service1Client,
    max_name_bytes: usize,
}

/// The REST routes, with the layers every REST port has.
pub fn router(
    service1: Service1Client,
    max_name_bytes: usize,
    limits: &HttpLimits,
    obs: &Observability,
) -> Router {
    let routes = Router::new()
        .route("/api/v1/say-hello", get(say_hello))
        .with_state(AppState { service1, max_name_bytes });
    serving::http::with_common_layers(routes, limits, obs)
}

async fn say_hello(
    State(state): State<AppState>,
    Extension(id): Extension<RequestId>,
    RawQuery(raw): RawQuery,
) -> Result<Json<String>, ApiError> {
    let name = query::param(raw.as_deref(), "name")?;
    // Checked here too, so a bad name costs no call to service1.
    let name = names::validate(name.as_deref(), state.max_name_bytes)?;
    let upper = state.service1.process_name(name, &id).await?;
    Ok(Json(format!("Hello, {upper}!")))
}
