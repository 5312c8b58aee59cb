use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use stt_common::events::S3Notification;

#[tokio::main]
async fn main() -> Result<(), Error> {
    stt_common::init_tracing();
    let deps = audio_transcribe::Deps::from_env().await?;
    run(service_fn(|ev: LambdaEvent<S3Notification>| {
        audio_transcribe::handler(&deps, ev.payload)
    }))
    .await
}
