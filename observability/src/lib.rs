//! What a service tells its operators: JSON log lines with request ids
//! (`logs`), Prometheus metrics (`metrics`) and OpenTelemetry traces
//! (`traces`). The serving layers record through these; they do not know
//! how lines are batched, series are stored or spans exported.
#![forbid(unsafe_code)]

pub mod logs;
pub mod metrics;
pub mod traces;
