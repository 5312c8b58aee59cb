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
}

/// Shared by every client of a command; cloning shares the counts.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Counts>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CallCounts {
    pub read: u64,
    pub write: u64,
}

impl CallCounter {
    pub fn counts(&self) -> CallCounts {
        CallCounts {
            read: self.0.read.load(Ordering::Relaxed),
            write: self.0.write.load(Ordering::Relaxed),
        }
    }

    fn record(&self, operation: &str) {
        let slot = if is_read(operation) {
            &self.0.read
        } else {
            &self.0.write
        };
        slot.fetch_add(1, Ordering::Relaxed);
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
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_owned());
        let operation = operation.unwrap_or_default();
        tracing::debug!(operation, "aws call");
        self.record(&operation);
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
        counter.record("GetBucketTagging");
        counter.record("PutObject");
        counter.record("ListObjectsV2");
        assert_eq!(counter.counts(), CallCounts { read: 2, write: 1 });
    }
}
