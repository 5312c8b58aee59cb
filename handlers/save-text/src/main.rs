use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use save_text::TranscribeEvent;

#[tokio::main]
async fn main() -> Result<(), Error> {
    stt_common::init_tracing();
    let deps = save_text::Deps::from_env().await?;
    run(service_fn(|ev: LambdaEvent<TranscribeEvent>| {
        save_text::handler(&deps, ev.payload)
    }))
    .await
}
