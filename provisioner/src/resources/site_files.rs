//! The site's files in its bucket (console step S2): uploaded with their content type, and
//! again only when their content changed (the S3 ETag of a single-part upload is its MD5).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use aws_sdk_cloudfront::types::{InvalidationBatch, Paths, Tag, TagKeys, Tags};
use aws_sdk_s3::primitives::ByteStream;
use futures::stream::{self, StreamExt, TryStreamExt};
use md5::{Digest, Md5};

use super::distribution::PENDING_INVALIDATION_TAG;
use super::OWNER_METADATA;
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Error, FieldDiff, FromContext, Planned,
    Resource, ResourceKey,
};
use crate::template::Part;

pub struct SiteFiles {
    pub key: ResourceKey,
    pub bucket: ResourceKey,
    pub bucket_name: String,
    pub source_dir: PathBuf,
    /// Top-level names below `source_dir` that are not part of the site (build files).
    pub exclude: Vec<&'static str>,
    /// The distribution serving the bucket: changed files are invalidated in its caches.
    pub distribution: Option<ResourceKey>,
    /// Files made at deploy time from other resources' outputs (the page's configuration).
    pub generated: Vec<GeneratedFile>,
}

/// A file whose contents come from the stack's outputs, e.g. `config.js` with the API URL.
pub struct GeneratedFile {
    pub key: &'static str,
    /// The resources whose outputs the contents need.
    pub inputs: Vec<ResourceKey>,
    pub contents: FromContext<String>,
}

/// A file of the site folder as it will be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub key: String,
    pub path: PathBuf,
    pub md5: String,
    pub content_type: String,
    /// The body when it is not read from `path` (generated files).
    pub contents: Option<Vec<u8>>,
}

/// Every file below `dir`, keyed by its path relative to `dir` with `/` separators, sorted;
/// entries at the top of `dir` for which `skip` holds (excluded folders such as the player's
/// `node_modules/`, tens of megabytes) are neither read nor hashed.
pub fn local_files(dir: &Path, skip: impl Fn(&str) -> bool) -> std::io::Result<Vec<LocalFile>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            if folder == dir && skip(&entry_name(&path)) {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(dir).expect("below dir");
            let key = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let bytes = std::fs::read(&path)?;
            files.push(LocalFile {
                key,
                md5: hex(&Md5::digest(&bytes)),
                content_type: content_type(&path),
                path,
                contents: None,
            });
        }
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(files)
}

fn entry_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The content type browsers need; text is declared UTF-8 so non-ASCII pages render right.
pub fn content_type(path: &Path) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let textual = mime.type_() == "text"
        || matches!(
            mime.subtype().as_str(),
            "javascript" | "json" | "xml" | "svg"
        );
    if textual {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

impl SiteFiles {
    fn files(&self, cx: &Context) -> Result<Vec<LocalFile>, Error> {
        let skip = |top: &str| self.exclude.contains(&top) || top.starts_with('.');
        let mut files = local_files(&self.source_dir, skip).map_err(|e| Error::Refused {
            resource: self.key.clone(),
            message: format!(
                "cannot read the site folder {}: {e}",
                self.source_dir.display()
            ),
        })?;
        for generated in &self.generated {
            let bytes = (generated.contents)(cx).into_bytes();
            files.retain(|f| f.key != generated.key);
            files.push(LocalFile {
                key: generated.key.to_owned(),
                md5: hex(&Md5::digest(&bytes)),
                content_type: content_type(Path::new(generated.key)),
                path: PathBuf::new(),
                contents: Some(bytes),
            });
        }
        files.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(files)
    }

    /// Key to ETag (without quotes) of every object in the bucket.
    async fn live(&self, cx: &Context) -> Result<HashMap<String, String>, Error> {
        let pages: Vec<_> = cx
            .aws
            .s3
            .list_objects_v2()
            .bucket(&self.bucket_name)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .step(&self.key, "ListObjectsV2")?;
        Ok(pages
            .iter()
            .flat_map(|p| p.contents())
            .map(|o| {
                (
                    o.key().unwrap_or_default().to_owned(),
                    o.e_tag().unwrap_or_default().trim_matches('"').to_owned(),
                )
            })
            .collect())
    }

    async fn upload(&self, cx: &Context, file: &LocalFile) -> Result<(), Error> {
        let body = match &file.contents {
            Some(bytes) => ByteStream::from(bytes.clone()),
            None => ByteStream::from_path(&file.path)
                .await
                .map_err(|e| Error::Refused {
                    resource: self.key.clone(),
                    message: format!("cannot read {}: {e}", file.path.display()),
                })?,
        };
        cx.aws
            .s3
            .put_object()
            .bucket(&self.bucket_name)
            .key(&file.key)
            .body(body)
            .content_type(&file.content_type)
            .metadata(OWNER_METADATA, cx.stack_name())
            .send()
            .await
            .step(&self.key, "PutObject")?;
        Ok(())
    }
}

/// What to invalidate after the upload: the replaced files, or everything when an earlier run
/// was interrupted between its upload and its invalidation (which files it replaced is lost).
pub fn paths_to_invalidate(changed: &[&LocalFile], pending: bool) -> Vec<String> {
    if pending {
        return vec!["/*".to_owned()];
    }
    invalidation_paths(changed)
}

/// A caller reference no earlier invalidation used: CloudFront answers a reused one with the
/// earlier invalidation and invalidates nothing (as when content returns to an earlier state).
fn unique_reference(stack: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "provision-{stack}-{}-{:x}",
        now.as_millis(),
        now.subsec_nanos() ^ std::process::id()
    )
}

impl SiteFiles {
    /// Uploads the changed files and asks CloudFront to drop its cached copies of those it
    /// replaced, so visitors get them before the cache policy's TTL runs out (a day for
    /// CachingOptimized). The distribution carries a tag from before the upload until the
    /// invalidation is made, so a run interrupted in between leaves work the next run sees.
    async fn upload_and_invalidate(
        &self,
        cx: &Context,
        files: &[LocalFile],
        changed: &[&LocalFile],
        planned: &Planned,
    ) -> Result<(), Error> {
        let target = match &self.distribution {
            Some(d) if planned.action != Action::Create => cx
                .output(d, "id")
                .zip(cx.output(d, "arn"))
                .map(|ids| (d, ids)),
            _ => None,
        };
        let replaced: Vec<&LocalFile> = files
            .iter()
            .filter(|f| {
                // A file that was missing cannot be in the caches (error answers are cached
                // for seconds only).
                planned.changes.iter().any(|c| {
                    c.field.strip_prefix("Object.") == Some(f.key.as_str())
                        && c.actual != "(missing)"
                })
            })
            .collect();
        let mut invalidation = None;
        if let Some((distribution, (id, arn))) = target {
            let pending = cx.output(distribution, "pending_invalidation").is_some();
            let paths = paths_to_invalidate(&replaced, pending);
            if !paths.is_empty() {
                let reference = unique_reference(cx.stack_name());
                self.mark_pending(cx, &arn, Some(&reference)).await?;
                invalidation = Some((id, arn, paths, reference));
            }
        }
        let uploads: Vec<_> = changed.iter().map(|f| self.upload(cx, f)).collect();
        stream::iter(uploads)
            .buffer_unordered(8)
            .try_collect::<Vec<()>>()
            .await?;
        if let Some((id, arn, paths, reference)) = invalidation {
            self.invalidate(cx, &id, paths, &reference).await?;
            self.mark_pending(cx, &arn, None).await?;
        }
        Ok(())
    }

    /// Sets (`Some`) or removes (`None`) the pending-invalidation tag on the distribution.
    async fn mark_pending(
        &self,
        cx: &Context,
        arn: &str,
        reference: Option<&str>,
    ) -> Result<(), Error> {
        let cf = &cx.aws.cloudfront;
        match reference {
            Some(reference) => {
                let tag = Tag::builder()
                    .key(PENDING_INVALIDATION_TAG)
                    .value(reference)
                    .build()
                    .expect("key set");
                cf.tag_resource()
                    .resource(arn)
                    .tags(Tags::builder().items(tag).build())
                    .send()
                    .await
                    .step(&self.key, "TagResource")?;
            }
            None => {
                cf.untag_resource()
                    .resource(arn)
                    .tag_keys(TagKeys::builder().items(PENDING_INVALIDATION_TAG).build())
                    .send()
                    .await
                    .step(&self.key, "UntagResource")?;
            }
        }
        Ok(())
    }

    async fn invalidate(
        &self,
        cx: &Context,
        distribution_id: &str,
        paths: Vec<String>,
        reference: &str,
    ) -> Result<(), Error> {
        let batch = InvalidationBatch::builder()
            .paths(
                Paths::builder()
                    .quantity(paths.len() as i32)
                    .set_items(Some(paths))
                    .build()
                    .expect("quantity set"),
            )
            .caller_reference(reference)
            .build()
            .expect("paths and reference set");
        cx.aws
            .cloudfront
            .create_invalidation()
            .distribution_id(distribution_id)
            .invalidation_batch(batch)
            .send()
            .await
            .step(&self.key, "CreateInvalidation")?;
        Ok(())
    }
}

/// CloudFront paths of changed files; the root too when the index page changed.
pub fn invalidation_paths(changed: &[&LocalFile]) -> Vec<String> {
    let mut paths: Vec<String> = changed.iter().map(|f| format!("/{}", f.key)).collect();
    if changed.iter().any(|f| f.key == "index.html") {
        paths.push("/".into());
    }
    paths.sort();
    paths
}

/// Changed or missing files, as diffs of their content hash.
pub fn file_diffs(files: &[LocalFile], live: &HashMap<String, String>) -> Vec<FieldDiff> {
    files
        .iter()
        .filter(|f| live.get(&f.key) != Some(&f.md5))
        .map(|f| {
            FieldDiff::new(
                format!("Object.{}", f.key),
                format!("md5 {}", f.md5),
                live.get(&f.key)
                    .map(|e| format!("md5 {e}"))
                    .unwrap_or_else(|| "(missing)".into()),
            )
        })
        .collect()
}

#[async_trait]
impl Resource for SiteFiles {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        let mut deps = vec![self.bucket.clone()];
        deps.extend(self.distribution.iter().cloned());
        deps.extend(self.generated.iter().flat_map(|g| g.inputs.iter().cloned()));
        deps
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let files = self.files(cx)?;
        let id = format!("s3://{}/", self.bucket_name);
        if cx.output(&self.bucket, "name").is_none() {
            let mut planned = Planned::create(self.key.clone(), id);
            planned.changes = file_diffs(&files, &HashMap::new());
            return Ok(planned);
        }
        let live = self.live(cx).await?;
        let mut changes = file_diffs(&files, &live);
        if let Some(reference) = self
            .distribution
            .as_ref()
            .and_then(|d| cx.output(d, "pending_invalidation"))
        {
            changes.push(FieldDiff::new(
                "Invalidation",
                "(none pending)",
                format!("pending since an interrupted run ({reference})"),
            ));
        }
        Ok(Planned::from_diff(self.key.clone(), id, changes))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        let files = self.files(cx)?;
        let changed: Vec<&LocalFile> = files
            .iter()
            .filter(|f| {
                planned.action == Action::Create
                    || planned
                        .changes
                        .iter()
                        .any(|c| c.field.strip_prefix("Object.") == Some(f.key.as_str()))
            })
            .collect();
        self.upload_and_invalidate(cx, &files, &changed, planned)
            .await
    }

    /// CloudFormation puts no objects into buckets: `provision` uploads the files after the
    /// deploy (the generated ones from the stack's outputs) and invalidates the replaced ones.
    fn cloudformation(&self, _cx: &Context) -> crate::template::Rendering {
        Ok(vec![Part::AfterDeploy(
            "CloudFormation does not upload objects; provision uploads the site files (and the \
             generated ones, such as config.js) after the deploy and invalidates the replaced \
             ones in CloudFront",
        )])
    }

    /// Removes the files of the site folder; the bucket removes whatever else the stack put.
    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let live = match self.live(cx).await {
            Ok(live) => live,
            Err(e) if e.code() == Some("NoSuchBucket") => return Ok(Deleted::Absent),
            Err(e) => return Err(e),
        };
        let files = self.files(cx).unwrap_or_default();
        let mut deleted = Deleted::Absent;
        for file in files.iter().filter(|f| live.contains_key(&f.key)) {
            let head = cx
                .aws
                .s3
                .head_object()
                .bucket(&self.bucket_name)
                .key(&file.key)
                .send()
                .await
                .step(&self.key, "HeadObject")?;
            if head
                .metadata()
                .and_then(|m| m.get(OWNER_METADATA))
                .map(String::as_str)
                == Some(cx.stack_name())
            {
                cx.aws
                    .s3
                    .delete_object()
                    .bucket(&self.bucket_name)
                    .key(&file.key)
                    .send()
                    .await
                    .step(&self.key, "DeleteObject")?;
                deleted = Deleted::Deleted;
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_found_recursively_with_types_and_hashes() {
        let dir = std::env::temp_dir().join(format!("site-files-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("css")).unwrap();
        std::fs::write(dir.join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(dir.join("css/site.css"), "body{}").unwrap();
        std::fs::write(dir.join("logo.png"), [0x89, b'P', b'N', b'G']).unwrap();
        // An excluded top-level folder is not even read: an unreadable file in it is no error.
        std::fs::create_dir_all(dir.join("node_modules/pkg")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", dir.join("node_modules/pkg/broken")).unwrap();
        let files = local_files(&dir, |top| top == "node_modules").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let summary: Vec<(&str, &str)> = files
            .iter()
            .map(|f| (f.key.as_str(), f.content_type.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("css/site.css", "text/css; charset=utf-8"),
                ("index.html", "text/html; charset=utf-8"),
                ("logo.png", "image/png")
            ]
        );
        // md5("<h1>hi</h1>")
        assert_eq!(files[1].md5, hex(&Md5::digest(b"<h1>hi</h1>")));
        assert_eq!(files[1].md5.len(), 32);
    }

    #[test]
    fn only_changed_or_missing_files_are_uploaded() {
        let file = |key: &str, md5: &str| LocalFile {
            key: key.into(),
            path: PathBuf::new(),
            md5: md5.into(),
            content_type: String::new(),
            contents: None,
        };
        let files = vec![
            file("a.html", "11"),
            file("b.html", "22"),
            file("c.html", "33"),
        ];
        let live: HashMap<String, String> = [("a.html", "11"), ("b.html", "99"), ("other", "00")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let diffs = file_diffs(&files, &live);
        let fields: Vec<&str> = diffs.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, vec!["Object.b.html", "Object.c.html"]);
        assert_eq!(diffs[1].actual, "(missing)");
        let changed: Vec<&LocalFile> = files.iter().skip(1).collect();
        assert_eq!(invalidation_paths(&changed), vec!["/b.html", "/c.html"]);
        assert_eq!(
            paths_to_invalidate(&changed, false),
            vec!["/b.html", "/c.html"]
        );
        // After an interrupted run nobody knows which files it replaced: all of them.
        assert_eq!(paths_to_invalidate(&changed, true), vec!["/*"]);
        assert_eq!(paths_to_invalidate(&[], true), vec!["/*"]);
        assert!(paths_to_invalidate(&[], false).is_empty());
    }

    #[test]
    fn every_invalidation_gets_a_reference_of_its_own() {
        // Content that returns to an earlier state must still be invalidated: CloudFront
        // answers a reused caller reference with the old invalidation.
        let a = unique_reference("demo");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = unique_reference("demo");
        assert_ne!(a, b);
        assert!(a.starts_with("provision-demo-"));
    }
}
