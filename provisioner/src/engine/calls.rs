//! Counts the AWS API operations a command makes, split into reads and writes, so anyone can
//! check that a converged stack is left alone (a second `up` makes no write call).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde::Serialize;

#[derive(Debug, Default)]
struct Counts {
    read: AtomicU64,
    write: AtomicU64,
    /// Write calls AWS carried out (answered with success).
    carried_out: AtomicU64,
    /// Fault injection for the crash-safety tests: abort the process right after this many
    /// write calls have succeeded, the moment AWS has acted but the tool has not yet seen it.
    abort_after_writes: Option<u64>,
    /// Fault injection: abort right after the first successful call of this operation.
    abort_after_operation: Option<String>,
}

/// Environment variable that arms [`Counts::abort_after_writes`].
pub const ABORT_AFTER_WRITES_ENV: &str = "PROVISION_FAULT_ABORT_AFTER_WRITES";
/// Environment variable that arms [`Counts::abort_after_operation`] (e.g. `PutObject`).
pub const ABORT_AFTER_OPERATION_ENV: &str = "PROVISION_FAULT_ABORT_AFTER_OPERATION";

/// Shared by every client of a command; cloning shares the counts.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Counts>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CallCounts {
    pub read: u64,
    pub write: u64,
}

impl CallCounter {
    /// A counter armed with the fault injection of [`ABORT_AFTER_WRITES_ENV`], if set.
    pub fn from_env() -> Self {
        let abort_after_writes = std::env::var(ABORT_AFTER_WRITES_ENV)
            .ok()
            .and_then(|v| v.parse().ok());
        CallCounter(Arc::new(Counts {
            abort_after_writes,
            abort_after_operation: std::env::var(ABORT_AFTER_OPERATION_ENV).ok(),
            ..Counts::default()
        }))
    }

    pub fn counts(&self) -> CallCounts {
        CallCounts {
            read: self.0.read.load(Ordering::Relaxed),
            write: self.0.write.load(Ordering::Relaxed),
        }
    }

    fn record(&self, operation: &str, succeeded: bool) {
        if is_read(operation) {
            self.0.read.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.0.write.fetch_add(1, Ordering::Relaxed);
        if !succeeded {
            return;
        }
        let carried_out = self.0.carried_out.fetch_add(1, Ordering::Relaxed) + 1;
        if self.0.abort_after_writes == Some(carried_out) {
            eprintln!("fault injection: aborting after write call {carried_out} ({operation})");
            std::process::abort();
        }
    }
}

/// AWS names read-only operations with these verbs; everything else may change something.
pub fn is_read(operation: &str) -> bool {
    ["Get", "List", "Describe", "Head"]
        .iter()
        .any(|verb| operation.starts_with(verb))
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    // Once per operation, whatever its outcome: a retried call is still one call. (The
    // operation's metadata is only in the config bag once the operation has been set up.)
    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_owned());
        let operation = operation.unwrap_or_default();
        tracing::debug!(operation, "aws call");
        let succeeded = matches!(context.output_or_error(), Some(Ok(_)));
        self.record(&operation, succeeded);
        if succeeded && self.0.abort_after_operation.as_deref() == Some(operation.as_str()) {
            eprintln!("fault injection: aborting after {operation}");
            std::process::abort();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_classified_by_verb() {
        for read in [
            "GetDistributionConfig",
            "ListBuckets",
            "HeadBucket",
            "DescribeVpcs",
        ] {
            assert!(is_read(read), "{read}");
        }
        for write in [
            "CreateDistributionWithTags",
            "PutBucketPolicy",
            "DeleteBucket",
            "UpdateDistribution",
        ] {
            assert!(!is_read(write), "{write}");
        }
        let counter = CallCounter::default();
        counter.record("GetBucketTagging", true);
        counter.record("PutObject", true);
        counter.record("PutBucketPolicy", false);
        counter.record("ListObjectsV2", false);
        assert_eq!(counter.counts(), CallCounts { read: 2, write: 2 });
        assert_eq!(counter.0.carried_out.load(Ordering::Relaxed), 1);
    }
}
