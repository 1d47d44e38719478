use std::process::ExitCode;

use service2::{Application, Config};

fn main() -> ExitCode {
    let config: Config = plumbing::config::parse_or_exit();
    config.common.runtime.clone().block_on(serve(config))
}

async fn serve(config: Config) -> ExitCode {
    let _telemetry = plumbing::telemetry::init("service2", config.common.log.log_format)
        .unwrap_or_else(|e| plumbing::config::exit_with_config_error(e));
    let stop = plumbing::shutdown::on_signal();
    let result = match Application::build(config).await {
        Ok(app) => {
            tracing::info!(rest = %app.rest_addr(), admin = %app.admin_addr(), "service2 listening");
            app.run_until_stopped(stop).await
        }
        Err(error) => Err(error),
    };
    plumbing::shutdown::exit_code("service2", result)
}
