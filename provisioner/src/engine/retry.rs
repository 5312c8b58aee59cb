//! Retries for the errors AWS is known to return while something settles (see
//! `aws-pitfalls.md`): the SDK already retries throttling and 5xx; these are the
//! service-specific "not yet" answers.

use std::future::Future;
use std::time::Duration;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// How long and how often to try again.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub total: Duration,
}

impl Backoff {
    /// IAM propagation, CloudFront state changes: seconds to a couple of minutes.
    pub const SETTLING: Backoff = Backoff {
        first: Duration::from_millis(500),
        max: Duration::from_secs(10),
        total: Duration::from_secs(180),
    };

    /// Eventual consistency right after a create (S3 buckets, EC2 ids): seconds, bounded at
    /// two minutes as Terraform bounds it.
    pub const READ_AFTER_CREATE: Backoff = Backoff {
        first: Duration::from_millis(500),
        max: Duration::from_secs(5),
        total: Duration::from_secs(120),
    };
}

/// The AWS error code of an SDK error, if the service sent one.
pub fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

/// Runs `call` until it succeeds, fails with an error `retryable` does not accept, or the
/// backoff's total time is spent.
pub async fn retry_when<T, E, F, Fut>(
    backoff: Backoff,
    retryable: impl Fn(&E) -> bool,
    mut call: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = tokio::time::Instant::now();
    let mut delay = backoff.first;
    loop {
        match call().await {
            Err(e) if retryable(&e) && started.elapsed() + delay < backoff.total => {
                tracing::debug!(?delay, "transient AWS answer, trying again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(backoff.max);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const FAST: Backoff = Backoff {
        first: Duration::from_millis(1),
        max: Duration::from_millis(2),
        total: Duration::from_millis(200),
    };

    #[tokio::test]
    async fn retries_only_what_is_retryable() {
        let attempts = AtomicU32::new(0);
        let result: Result<u32, &str> = retry_when(
            FAST,
            |e| *e == "not yet",
            || async {
                let n = attempts.fetch_add(1, Ordering::SeqCst);
                if n < 3 {
                    Err("not yet")
                } else {
                    Ok(n)
                }
            },
        )
        .await;
        assert_eq!(result, Ok(3));

        let attempts = AtomicU32::new(0);
        let result: Result<u32, &str> = retry_when(
            FAST,
            |e| *e == "not yet",
            || async {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err("denied")
            },
        )
        .await;
        assert_eq!(result, Err("denied"));
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn gives_up_after_the_total_time() {
        let result: Result<(), &str> =
            retry_when(FAST, |_| true, || async { Err("not yet") }).await;
        assert_eq!(result, Err("not yet"));
    }
}
