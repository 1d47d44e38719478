//! service1's REST API: `GET /api/v1/name?name=...` → `{"name": "..."}`.

use axum::{
    extract::{RawQuery, State},
    routing::get,
    Json, Router,
};
use observability::Observability;
use serde::Serialize;
use serving::ApiError;
use settings::HttpLimits;
use wire::{names, query};

#[derive(Clone)]
struct NameLimit(usize);

#[derive(Serialize)]
struct NameResponse {
    name: String,
}

/// The REST routes, with the layers every REST port has.
pub fn router(max_name_bytes: usize, limits: &HttpLimits, obs: &Observability) -> Router {
    let routes = Router::new().route("/api/v1/name", get(name)).with_state(NameLimit(max_name_bytes));
    serving::http::with_common_layers(routes, limits, obs)
}

async fn name(
    State(limit): State<NameLimit>,
    RawQuery(raw): RawQuery,
) -> Result<Json<NameResponse>, ApiError> {
    let name = query::param(raw.as_deref(), "name")?;
    let name = names::validate(name.as_deref(), limit.0)?;
    Ok(Json(NameResponse { name: names::upper(name) }))
}
