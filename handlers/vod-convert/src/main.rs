use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use vod_convert::Notification;

#[tokio::main]
async fn main() -> Result<(), Error> {
    vod_convert::init_tracing();
    let deps = vod_convert::Deps::from_env().await?;
    run(service_fn(|ev: LambdaEvent<Notification>| {
        vod_convert::handler(&deps, ev.payload)
    }))
    .await
}
