//! The artifact bucket `{stack}-artifacts-{account}`: what the templates point at (the
//! functions' zips) and the templates themselves (over CloudFormation's 51,200-byte limit
//! for a template in the request), uploaded before each deploy under keys that are their
//! digests. It is made as the SDK engine makes a data bucket: private, encrypted, TLS only.

use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;

use crate::engine::{Context, Resource, ResourceKey};
use crate::output::ResourceLine;
use crate::resources::OWNER_METADATA;

const BUCKET: ResourceKey = ResourceKey::new("bucket", "artifacts");
const POLICY: ResourceKey = ResourceKey::new("bucket_policy", "artifacts");

/// The bucket and its policy, as the SDK engine's resources.
pub fn resources(cx: &Context) -> Vec<Arc<dyn Resource>> {
    crate::systems::web::data_bucket(
        cx,
        BUCKET,
        POLICY,
        crate::template::artifact_bucket_name(cx),
        None,
    )
}

/// Where an upload's bytes come from.
pub enum Source {
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// The URL CloudFormation reads `key` from: virtual-hosted style on AWS, path style on an
/// endpoint of one host name (the emulator).
pub fn url(cx: &Context, key: &str) -> String {
    let bucket = crate::template::artifact_bucket_name(cx);
    match &cx.aws.endpoint {
        Some(endpoint) => format!("{}/{bucket}/{key}", endpoint.trim_end_matches('/')),
        None => format!("https://{bucket}.s3.{}.amazonaws.com/{key}", cx.aws.region),
    }
}

/// Uploads each file not in the bucket yet (a key is its content's digest, so one that is
/// there holds these bytes), marked as the stack's so that `down` may delete it.
pub async fn upload(
    cx: &Context,
    files: Vec<(String, Source)>,
) -> Result<ResourceLine, ResourceLine> {
    let bucket = crate::template::artifact_bucket_name(cx);
    let mut uploaded = 0;
    let failed = |message: String| {
        let mut line = ResourceLine::named(format!("{BUCKET} uploads"), "failed");
        line.error = Some(message);
        line
    };
    for (key, source) in &files {
        match cx
            .aws
            .s3
            .head_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => continue,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => {}
            Err(e) => {
                return Err(failed(format!(
                    "HeadObject {key}: {}",
                    aws_smithy_types::error::display::DisplayErrorContext(&e)
                )))
            }
        }
        let bytes = match source {
            Source::File(path) => {
                std::fs::read(path).map_err(|e| failed(format!("{}: {e}", path.display())))?
            }
            Source::Bytes(bytes) => bytes.clone(),
        };
        cx.aws
            .s3
            .put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .metadata(OWNER_METADATA, cx.stack_name())
            .send()
            .await
            .map_err(|e| {
                failed(format!(
                    "PutObject {key}: {}",
                    aws_smithy_types::error::display::DisplayErrorContext(&e)
                ))
            })?;
        uploaded += 1;
    }
    let mut line = ResourceLine::named(
        format!("{BUCKET} uploads"),
        if uploaded > 0 { "update" } else { "noop" },
    );
    line.physical_id = Some(bucket);
    line.notes.push(format!(
        "{uploaded} of {} files uploaded; the others were there already",
        files.len()
    ));
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_read_from_the_regional_endpoint_or_the_emulator() {
        let cx = crate::systems::tests::context(false);
        assert_eq!(
            url(&cx, "templates/demo-stt/abc.json"),
            format!(
                "https://{}-artifacts-111122223333.s3.us-east-1.amazonaws.com/templates/demo-stt/abc.json",
                cx.stack_name()
            )
        );
    }
}
