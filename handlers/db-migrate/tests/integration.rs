//! db_migrate against MariaDB, and the built `db_migrate` zip run inside ministack's Lambda.
//! Runs with STT_INTEGRATION=1.

use std::path::PathBuf;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::Environment;
use db_migrate::{handler, Deps};
use sqlx::{AssertSqlSafe, Connection};
use stt_common::testing::{self, integration_enabled, require_services};

fn deps(db: &str) -> Deps {
    Deps::new(testing::server_options(), db)
}

#[tokio::test]
async fn migrations_are_idempotent() {
    if !integration_enabled("db_migrate::migrations_are_idempotent") {
        return;
    }
    require_services().await;
    let db = testing::unique("stt_migrate").replace('-', "_");
    let first = handler(&deps(&db), serde_json::json!({}))
        .await
        .expect("first run");
    assert_eq!(first.applied, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(first.current_version, 6);
    let second = handler(&deps(&db), serde_json::json!({}))
        .await
        .expect("second run");
    assert!(second.applied.is_empty(), "{second:?}");
    assert_eq!(second.already_applied, vec![1, 2, 3, 4, 5, 6]);
    testing::drop_database(&db).await;
}

#[tokio::test]
async fn upgrades_the_console_table_keeping_rows() {
    if !integration_enabled("db_migrate::upgrades_the_console_table_keeping_rows") {
        return;
    }
    require_services().await;
    let db = testing::unique("stt_console").replace('-', "_");
    {
        let mut c = sqlx::mysql::MySqlConnection::connect_with(&testing::server_options())
            .await
            .unwrap();
        for stmt in [
            format!("CREATE DATABASE `{db}` CHARACTER SET latin1"),
            format!("CREATE TABLE `{db}`.fileTable(email VARCHAR(32) NOT NULL, filename VARCHAR(600) NOT NULL, language VARCHAR(10) NOT NULL, time TIMESTAMP NOT NULL)"),
            format!("INSERT INTO `{db}`.fileTable VALUES ('old@example.com', 'old.mp3', 'ko-KR', NOW())"),
        ] {
            sqlx::query(AssertSqlSafe(stmt)).execute(&mut c).await.unwrap();
        }
    }
    let report = handler(&deps(&db), serde_json::json!({}))
        .await
        .expect("upgrade");
    assert_eq!(report.applied, vec![1, 2, 3, 4, 5, 6]);
    let pool = stt_common::db::pool(testing::server_options().database(&db));
    let (email, status): (String, String) = sqlx::query_as("SELECT email, status FROM fileTable")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        (email.as_str(), status.as_str()),
        ("old@example.com", "UPLOADED")
    );
    // Korean file names fit after the utf8mb4 conversion.
    sqlx::query("INSERT INTO fileTable (email, filename, language, time) VALUES ('a@b.co', '한글 녹음.mp3', 'ko-KR', NOW())")
        .execute(&pool)
        .await
        .unwrap();

    // A run that died after the DDL but before recording v3 is recognised by the probe.
    sqlx::query("DELETE FROM schema_migrations WHERE version = 3")
        .execute(&pool)
        .await
        .unwrap();
    let again = handler(&deps(&db), serde_json::json!({}))
        .await
        .expect("re-run");
    assert_eq!(again.applied, vec![3]);
    // The same for v4 (the quotas' column and indexes).
    sqlx::query("DELETE FROM schema_migrations WHERE version = 4")
        .execute(&pool)
        .await
        .unwrap();
    let again = handler(&deps(&db), serde_json::json!({}))
        .await
        .expect("re-run");
    assert_eq!(again.applied, vec![4]);
    pool.close().await;
    testing::drop_database(&db).await;
}

fn zip_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/lambda/db_migrate/bootstrap.zip")
}

/// The release zip, as `cargo lambda build --release --output-format zip` makes it, created
/// as a `provided.al2023` function in ministack and invoked.
#[tokio::test]
async fn built_zip_runs_in_ministack_lambda() {
    if !integration_enabled("db_migrate::built_zip_runs_in_ministack_lambda") {
        return;
    }
    let zip = zip_path();
    if !zip.exists() {
        let msg = format!(
            "{} is missing: build the zips first (handlers/README.md, `make zips`)",
            zip.display()
        );
        if std::env::var("STT_REQUIRE_ZIPS").as_deref() == Ok("1") {
            panic!("{msg}");
        }
        eprintln!("built_zip_runs_in_ministack_lambda skipped: {msg}");
        return;
    }
    require_services().await;
    let cfg = testing::ministack_config().await;
    let lambda = aws_sdk_lambda::Client::new(&cfg);
    let name = testing::unique("stt-db-migrate");
    let db = name.replace('-', "_");
    let env = Environment::builder()
        .variables("DB_URL", testing::db_url())
        .variables("DB_NAME", &db)
        .variables("RUST_LOG", "info")
        .build();
    // db_migrate calls no AWS API on the local target (the database is a URL there): only
    // Lambda writes its logs with the role.
    let statements = serde_json::json!([{"Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": format!("arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/{name}:*")}]);
    testing::deploy_zip(&cfg, &name, &zip, env, 128, 60, statements).await;
    let out = lambda
        .invoke()
        .function_name(&name)
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
        .expect("Invoke");
    let payload =
        String::from_utf8_lossy(out.payload().map(|p| p.as_ref()).unwrap_or_default()).into_owned();
    let _ = lambda.delete_function().function_name(&name).send().await;
    assert!(out.function_error().is_none(), "function error: {payload}");
    let report: serde_json::Value = serde_json::from_str(&payload).expect("JSON answer");
    assert_eq!(
        report["applied"],
        serde_json::json!([1, 2, 3, 4, 5, 6]),
        "{payload}"
    );
    assert_eq!(report["database"], db.as_str());
    testing::drop_database(&db).await;
}
