//! Polling until AWS reports that something settled (a function active, a distribution
//! deployed, a database available or gone): bounded, with progress on stderr, and tolerant of a
//! failed read, so that a 40-minute wait is not lost to one throttled or dropped call.

use std::future::Future;
use std::time::Duration;

use super::{Context, Error, ResourceKey};

/// What one look at the resource found.
pub enum Poll<T> {
    Ready(T),
    /// Not yet; the text says where it stands (shown in the progress line).
    Pending(String),
}

/// How often to look and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub interval: Duration,
    pub limit: Duration,
}

impl Wait {
    /// `aws` on AWS; on the local emulator, which answers in seconds, a short interval.
    pub fn new(cx: &Context, aws: Duration, limit: Duration) -> Wait {
        let interval = if cx.aws.local {
            Duration::from_millis(200)
        } else {
            aws
        };
        Wait { interval, limit }
    }
}

/// Consecutive failed reads a wait survives (each already retried by the SDK).
pub const READ_FAILURES: u32 = 5;

/// Error codes AWS answers while it is fine but busy: throttling and server errors. The SDK
/// retries them itself; a wait must also survive the rare call whose retries all failed.
const BUSY_CODES: [&str; 14] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "LimitExceededException",
    "SlowDown",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceException",
];

/// Whether a failed read says nothing about the resource: no answer at all (connection lost,
/// timeout), throttling or a server error.
pub fn transient(e: &Error) -> bool {
    match e {
        Error::Aws { code: None, .. } => true,
        Error::Aws {
            code: Some(code), ..
        } => BUSY_CODES.contains(&code.as_str()),
        _ => false,
    }
}

/// Calls `probe` every `wait.interval` until it is ready, fails for good, or `wait.limit`
/// passes. Up to [`READ_FAILURES`] transient failures in a row are waited out.
pub async fn until<T, F, Fut>(
    cx: &Context,
    key: &ResourceKey,
    what: &str,
    wait: Wait,
    mut probe: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, Error>>,
{
    let spinner = cx.spinner(format!("waiting for {what}"));
    let started = tokio::time::Instant::now();
    let mut failures = 0;
    loop {
        match probe().await {
            Ok(Poll::Ready(value)) => return Ok(value),
            Ok(Poll::Pending(status)) => {
                failures = 0;
                spinner.set_message(format!("waiting for {what} ({status})"));
            }
            Err(e) if transient(&e) && failures + 1 < READ_FAILURES => {
                failures += 1;
                tracing::warn!(resource = %key, error = %e, "a read failed while waiting; trying again");
                spinner.set_message(format!("waiting for {what} (a read failed: {e})"));
            }
            Err(e) => return Err(e),
        }
        if started.elapsed() >= wait.limit {
            return Err(Error::Timeout {
                resource: key.clone(),
                what: what.to_owned(),
                seconds: wait.limit.as_secs(),
            });
        }
        tokio::time::sleep(wait.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    fn cx() -> Context {
        let stack: crate::spec::Stack =
            serde_yaml::from_str("stack: {name: demo, region: us-east-1}\n").unwrap();
        Context::new(
            Arc::new(stack),
            crate::aws::Clients::offline("us-east-1", "111122223333", true),
            false,
        )
    }

    fn error(code: Option<&str>) -> Error {
        Error::Aws {
            resource: ResourceKey::new("fake", "f"),
            step: "Describe",
            code: code.map(str::to_owned),
            source: "failed".into(),
        }
    }

    const FAST: Wait = Wait {
        interval: Duration::from_millis(1),
        limit: Duration::from_secs(5),
    };

    #[tokio::test]
    async fn a_failed_read_does_not_end_the_wait() {
        let cx = cx();
        let key = ResourceKey::new("fake", "f");
        let calls = AtomicU32::new(0);
        let answers = [Err(Some("Throttling")), Ok(false), Err(None), Ok(true)];
        let result = until(&cx, &key, "f", FAST, || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) as usize;
            match answers[n] {
                Ok(true) => Ok(Poll::Ready(n)),
                Ok(false) => Ok(Poll::Pending("creating".into())),
                Err(code) => Err(error(code)),
            }
        })
        .await;
        assert_eq!(result.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_refusal_or_too_many_failures_end_it() {
        let cx = cx();
        let key = ResourceKey::new("fake", "f");
        let denied: Result<(), Error> = until(&cx, &key, "f", FAST, || async {
            Err(error(Some("AccessDenied")))
        })
        .await;
        assert_eq!(denied.unwrap_err().code(), Some("AccessDenied"));
        let calls = AtomicU32::new(0);
        let busy: Result<(), Error> = until(&cx, &key, "f", FAST, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(error(Some("ServiceUnavailable")))
        })
        .await;
        assert!(busy.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), READ_FAILURES);
    }

    #[tokio::test]
    async fn the_wait_is_bounded() {
        let cx = cx();
        let key = ResourceKey::new("fake", "f");
        let wait = Wait {
            interval: Duration::from_millis(1),
            limit: Duration::from_millis(20),
        };
        let result: Result<(), Error> = until(&cx, &key, "f", wait, || async {
            Ok(Poll::Pending("deleting".into()))
        })
        .await;
        assert!(matches!(result, Err(Error::Timeout { .. })));
    }
}
