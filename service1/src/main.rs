use std::process::ExitCode;

use service1::{Application, Config};

fn main() -> ExitCode {
    let config: Config = plumbing::config::parse_or_exit();
    config.common.runtime.clone().block_on(serve(config))
}

async fn serve(config: Config) -> ExitCode {
    let _telemetry = plumbing::telemetry::init("service1", config.common.log.log_format)
        .unwrap_or_else(|e| plumbing::config::exit_with_config_error(e));
    let stop = plumbing::shutdown::on_signal();
    let result = match Application::build(config).await {
        Ok(app) => {
            tracing::info!(rest = %app.rest_addr(), grpc = %app.grpc_addr(), admin = %app.admin_addr(), "service1 listening");
            app.run_until_stopped(stop).await
        }
        Err(error) => Err(error),
    };
    plumbing::shutdown::exit_code("service1", result)
}
