//! The application user: `db_migrate` (with the master credentials) makes it, its password
//! only in an empty secret of ministack's Secrets Manager; the functions' connection path
//! (`DB_SECRET_ARN` = that secret) may then read and write the service's rows and nothing
//! else; later runs keep the password, and give it back to a user whose password drifted
//! (a database restored from a snapshot). Runs with STT_INTEGRATION=1.

use db_migrate::{handler, AppUser, Deps};
use sqlx::mysql::MySqlConnection;
use sqlx::{AssertSqlSafe, Connection};
use stt_common::app_user::SecretsManagerStore;
use stt_common::config::{DbConfig, DbCredentials};
use stt_common::db::{database_options, read_secret_json, Database, SecretCredentials};
use stt_common::repo::{MySqlRepo, NewUpload, UploadRepo};
use stt_common::testing::{self, integration_enabled, require_services};

#[tokio::test]
async fn the_application_user_may_use_the_rows_and_nothing_else() {
    if !integration_enabled("db_migrate::app_user") {
        return;
    }
    require_services().await;
    let sdk = testing::ministack_config().await;
    let (db, _) = testing::fresh_database("stt_app_user").await;
    let user = format!("app{}", std::process::id() % 100_000);
    testing::as_root(&format!("DROP USER IF EXISTS '{user}'@'%'")).await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    // What the stack makes: a secret without a value.
    let arn = secrets
        .create_secret()
        .name(testing::unique("app-user"))
        .send()
        .await
        .expect("CreateSecret")
        .arn()
        .unwrap()
        .to_owned();
    let deps = || {
        Deps::new(testing::server_options(), db.clone()).with_app_user(AppUser {
            user: user.clone(),
            store: Box::new(SecretsManagerStore::new(&sdk, &arn)),
        })
    };

    let first = handler(&deps(), serde_json::json!({}))
        .await
        .expect("first run");
    let made = first.app_user.clone().expect("the app user in the report");
    assert_eq!(
        (made.user.as_str(), made.new_password, made.tables),
        (
            user.as_str(),
            true,
            vec!["fileTable".to_owned(), "recipients".to_owned()]
        )
    );
    let answer = serde_json::to_string(&first).unwrap();
    let stored: SecretCredentials = read_secret_json(&sdk, &arn).await.unwrap();
    assert_eq!(stored.username, user);
    assert!(
        !answer.contains(&stored.password),
        "the answer never holds the password"
    );

    // The functions' path: the secret, read at cold start.
    let server = testing::server_options();
    let cfg = DbConfig {
        host: server.get_host().to_owned(),
        port: server.get_port(),
        database: db.clone(),
        credentials: DbCredentials::Secret { arn: arn.clone() },
        ssl_mode: Some("disabled".into()),
        ssl_ca: None,
    };
    let repo = MySqlRepo::with_database(Database::connect(&cfg, &sdk).await.unwrap());
    let upload_id = format!("{:032x}", 0x000a_0000_u128 + std::process::id() as u128);
    repo.insert(&NewUpload {
        upload_id: upload_id.clone(),
        email: "user@example.com".into(),
        filename: "meeting.mp3".into(),
        language: "ko-KR".into(),
        audio_key: format!("input_audio/{upload_id}/meeting.mp3"),
        source_ip: None,
        ticket: None,
    })
    .await
    .expect("the app user inserts an upload");
    assert!(
        repo.claim_email(&upload_id).await.unwrap(),
        "and updates it"
    );
    assert!(
        repo.find(&upload_id).await.unwrap().is_some(),
        "and reads it"
    );

    // Anything beyond the rows of the service's tables is refused.
    let mut conn =
        MySqlConnection::connect_with(&database_options(&cfg, Some(&sdk)).await.unwrap())
            .await
            .unwrap();
    for statement in [
        "CREATE TABLE intruder (id INT)",
        "DROP TABLE fileTable",
        "ALTER TABLE fileTable ADD COLUMN extra INT",
        "TRUNCATE TABLE fileTable",
        "SELECT * FROM schema_migrations",
        "SELECT User FROM mysql.user",
        "CREATE USER 'other'@'%' IDENTIFIED BY 'x'",
        "CREATE DATABASE intruder",
    ] {
        let refused = sqlx::query(AssertSqlSafe(statement.to_owned()))
            .execute(&mut conn)
            .await;
        let message = match refused {
            Err(e) => e.to_string(),
            Ok(_) => panic!("the app user may not: {statement}"),
        };
        assert!(message.contains("denied"), "{statement}: {message}");
    }
    conn.close().await.unwrap();

    // A second run keeps the password.
    let second = handler(&deps(), serde_json::json!({})).await.unwrap();
    assert!(!second.app_user.unwrap().new_password);
    let again: SecretCredentials = read_secret_json(&sdk, &arn).await.unwrap();
    assert_eq!(again.password, stored.password);

    // A user whose password no longer matches (restored from a snapshot) gets the secret's.
    testing::as_root(&format!(
        "ALTER USER '{user}'@'%' IDENTIFIED BY 'restored-Passw0rd'"
    ))
    .await;
    assert!(
        MySqlConnection::connect_with(&database_options(&cfg, Some(&sdk)).await.unwrap())
            .await
            .is_err()
    );
    handler(&deps(), serde_json::json!({})).await.unwrap();
    let fresh = MySqlRepo::with_database(Database::connect(&cfg, &sdk).await.unwrap());
    assert!(fresh.find(&upload_id).await.unwrap().is_some());

    testing::as_root(&format!("DROP USER IF EXISTS '{user}'@'%'")).await;
    let _ = secrets
        .delete_secret()
        .secret_id(&arn)
        .force_delete_without_recovery(true)
        .send()
        .await;
    testing::drop_database(&db).await;
}
