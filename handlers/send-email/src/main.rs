use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;
use stt_common::events::S3Notification;

#[tokio::main]
async fn main() -> Result<(), Error> {
    stt_common::init_tracing();
    let deps = send_email::Deps::from_env().await?;
    run(service_fn(|ev: LambdaEvent<Value>| {
        let deps = &deps;
        async move {
            let bad = |e: serde_json::Error| stt_common::Error::BadEvent(e.to_string());
            // The API's /confirm, or S3's notifications of the results.
            if send_email::confirm::is_api_request(&ev.payload) {
                let request = serde_json::from_value(ev.payload).map_err(bad)?;
                let answer = send_email::confirm::handler(deps, request).await;
                return serde_json::to_value(answer).map_err(bad);
            }
            let event: S3Notification = serde_json::from_value(ev.payload).map_err(bad)?;
            send_email::handler(deps, event).await
        }
    }))
    .await
}
