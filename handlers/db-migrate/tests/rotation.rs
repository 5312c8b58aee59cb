//! RDS rotates the managed master secret: a MariaDB user whose password lives in a ministack
//! secret; queries work; the password changes in MariaDB and in the secret (what RDS does);
//! the next operation on a new connection still succeeds, because the function reads the
//! secret again after MySQL's "Access denied" (1045). Runs with STT_INTEGRATION=1.

use sqlx::Connection;
use stt_common::db::{is_access_denied, Database};
use stt_common::repo::{MySqlRepo, NewUpload, UploadRepo};
use stt_common::testing::{self, integration_enabled, require_services, SecretUser};
use stt_common::Error;

#[tokio::test]
async fn rotated_secret_is_read_again_after_access_denied() {
    if !integration_enabled("db_migrate::rotation") {
        return;
    }
    require_services().await;
    let sdk = testing::ministack_config().await;
    let (db, _) = testing::fresh_database("stt_rotation").await;
    let secret = SecretUser::create(&sdk, "rot", &db, "first-Passw0rd").await;
    let user = secret.user.clone();
    let cfg = secret.db_config(&db);

    // Cold start: the secret is read once; a query works.
    let database = Database::connect(&cfg, &sdk).await.expect("connect");
    let repo = MySqlRepo::with_database(database.clone());
    let upload_id = format!("{:032x}", 0x0007_0000_u128 + std::process::id() as u128);
    repo.insert(&NewUpload {
        upload_id: upload_id.clone(),
        email: "user@example.com".into(),
        filename: "회의 녹음 1.mp3".into(),
        language: "ko-KR".into(),
        audio_key: format!("input_audio/{upload_id}/회의 녹음 1.mp3"),
        source_ip: None,
        ticket: None,
    })
    .await
    .expect("insert with the first password");
    assert_eq!(database.rotation().unwrap().refreshes(), 0);

    // RDS rotates; the open connections are gone (idle timeout, a new Lambda environment).
    secret.rotate("second-Passw0rd").await;
    // The old options alone are refused with 1045 ...
    let err = sqlx::mysql::MySqlConnection::connect_with(&database.pool().connect_options())
        .await
        .unwrap_err();
    assert!(is_access_denied(&err), "{err}");
    // ... but the next operation reads the secret again and succeeds.
    let row = repo
        .find(&upload_id)
        .await
        .expect("the operation after the rotation succeeds")
        .expect("the row");
    assert_eq!(row.filename, "회의 녹음 1.mp3");
    assert_eq!(database.rotation().unwrap().refreshes(), 1);
    // And keeps working without reading it again.
    secret.kill_sessions().await;
    assert!(repo.claim_email(&upload_id).await.unwrap());
    assert_eq!(database.rotation().unwrap().refreshes(), 1);

    // db_migrate: a warm instance whose credentials were rotated away.
    let deps = db_migrate::Deps::connect(&cfg, &sdk).await.unwrap();
    secret.rotate("third-Passw0rd").await;
    let report = db_migrate::handler(&deps, serde_json::json!({}))
        .await
        .expect("migration after the rotation");
    assert_eq!(report.already_applied, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(deps.rotation.as_ref().unwrap().refreshes(), 1);
    let again = db_migrate::handler(&deps, serde_json::json!({})).await;
    assert!(again.is_ok(), "the new credentials are kept: {again:?}");
    assert_eq!(deps.rotation.as_ref().unwrap().refreshes(), 1);

    // Without a secret (local DB_URL) there is nothing to re-read: the error stands.
    let fixed = db_migrate::Deps::new(
        testing::server_options()
            .username(&user)
            .password("first-Passw0rd"),
        db.clone(),
    );
    match db_migrate::handler(&fixed, serde_json::json!({})).await {
        Err(Error::Db(e)) => assert!(is_access_denied(&e), "{e}"),
        other => panic!("expected access denied, got {other:?}"),
    }

    secret.remove().await;
    testing::drop_database(&db).await;
}
