use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    stt_common::init_tracing();
    let deps = file_upload::Deps::from_env().await?;
    run(service_fn(|ev: LambdaEvent<ApiGatewayProxyRequest>| {
        file_upload::handler(&deps, ev.payload)
    }))
    .await
}
