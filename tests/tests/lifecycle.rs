//! The whole repository stack (both systems) through the realism layer, in whatever mode
//! `make test` put it in (test mode: validation, AWS's timing scaled down, faults): the first
//! `up` succeeds, a second writes nothing, `drift` finds nothing, and `down` leaves nothing the
//! stack owned. The seed of the layer is printed, so a failure can be replayed
//! (`REALISM_SEED=N make test`). Needs the zips and the player (`make zips web`).

use system_tests::{
    mysql_drop_database, repository_sections, require_zips, Aws, Emulator, Realism, TestStack,
};

#[tokio::test(flavor = "multi_thread")]
async fn both_systems_up_again_drift_and_down_through_the_realism_layer() {
    require_zips(&["db_migrate", "vod_convert"]);
    let realism = Realism::on(Emulator::Ministack);
    let config = realism.config();
    eprintln!(
        "realism layer: mode {} seed {} time scale {} fault rate {}",
        config["mode"], config["seed"], config["time_scale"], config["fault_rate"]
    );
    mysql_drop_database("t_lifecycle");
    let name = "t-lifecycle";
    let stack = TestStack::with_sections(
        name,
        Emulator::Ministack,
        &repository_sections("t_lifecycle", "10.60.0.0/16", "lifecycle@example.com"),
    );

    let first = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(first["summary"]["failed"], 0, "{first:#}");
    let second = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(second["api_calls"]["write"], 0, "{second:#}");
    assert_eq!(second["summary"]["created"], 0, "{second:#}");
    assert_eq!(second["summary"]["updated"], 0, "{second:#}");
    stack.run(&["drift"]).expect(0);

    let down = stack
        .run(&[
            "--output",
            "json",
            "down",
            "--delete-data",
            "--skip-final-snapshot",
        ])
        .expect(0)
        .json();
    assert_eq!(down["summary"]["failed"], 0, "{down:#}");
    let left = Aws::new().await.owned_by(name).await;
    assert!(left.is_empty(), "down left: {left:?}");
    mysql_drop_database("t_lifecycle");
}
