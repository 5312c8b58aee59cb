use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    stt_common::init_tracing();
    let deps = db_migrate::Deps::from_env().await?;
    run(service_fn(|ev: LambdaEvent<Value>| {
        db_migrate::handler(&deps, ev.payload)
    }))
    .await
}
