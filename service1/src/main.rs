use std::process::ExitCode;

use service1::{Application, Config};

const SERVICE: observability::traces::Service =
    observability::traces::Service { name: "service1", version: service1::VERSION };

fn main() -> ExitCode {
    let config: Config = settings::parse_or_exit();
    serving::runtime::block_on(&config.common.runtime.clone(), serve(config))
}

async fn serve(config: Config) -> ExitCode {
    let (telemetry, obs) = observability::init(SERVICE, config.common.log.log_format)
        .unwrap_or_else(|e| settings::exit_with_config_error(e));
    let stop = serving::shutdown::on_signal();
    let result = match Application::build(config, obs).await {
        Ok(app) => {
            let rest =
                app.rest_addr().map_or_else(|| "off (REST_ENABLED=false)".to_owned(), |a| a.to_string());
            tracing::info!(rest, grpc = %app.grpc_addr(), admin = %app.admin_addr(), "service1 listening");
            app.run_until_stopped(stop).await
        }
        Err(error) => Err(error),
    };
    let code = serving::shutdown::exit_code("service1", result);
    telemetry.shutdown().await;
    code
}
