//! Group configs (config resource GROUP, KIP-848 and KIP-932) through
//! librdkafka against the real broker: confluent-kafka's admin client
//! (librdkafka's IncrementalAlterConfigs and DescribeConfigs, which read
//! the GROUP_CONFIG source) and the rdkafka crate's legacy AlterConfigs;
//! kafka-python's ListConfigResources. Set, described back, deleted back
//! to the default, refused with INVALID_CONFIG, validate_only, and kept
//! across a kill -9.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::time::Duration;

use common::BrokerProcess;
use rdkafka::admin::{AdminOptions, AlterConfig, ResourceSpecifier};

const CLIENT: &str = "librdkafka_group_configs.py";

/// confluent-kafka's (librdkafka's) admin client on one listener, with
/// the librdkafka properties `config` adds.
struct Librdkafka {
    bootstrap: String,
    config: serde_json::Value,
}

impl Librdkafka {
    fn of(broker: &BrokerProcess) -> Librdkafka {
        Librdkafka {
            bootstrap: broker.bootstrap.clone(),
            config: serde_json::json!({}),
        }
    }

    /// Logged in as `user` with SCRAM-SHA-512 on the SASL listener at
    /// `bootstrap`.
    fn sasl(bootstrap: &str, user: &str, password: &str) -> Librdkafka {
        Librdkafka {
            bootstrap: bootstrap.to_owned(),
            config: serde_json::json!({
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": user,
                "sasl.password": password,
            }),
        }
    }

    /// The script's answer to `args`: the answer, or the error's name and
    /// message.
    fn run(&self, args: &[&str]) -> Result<serde_json::Value, (String, String)> {
        let mut all = vec![self.bootstrap.as_str()];
        all.extend_from_slice(args);
        let config = self.config.to_string();
        let out = common::security::python_client_fed(CLIENT, &all, config.as_bytes())
            .unwrap_or_else(|stderr| panic!("{CLIENT} {args:?} failed:\n{stderr}"));
        let answer: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{CLIENT} printed {out:?}: {e}"));
        match answer["error"].as_object() {
            None => Ok(answer),
            Some(error) => Err((
                error["name"].as_str().unwrap().to_owned(),
                error["message"].as_str().unwrap().to_owned(),
            )),
        }
    }

    /// IncrementalAlterConfigs on `group`.
    fn alter(&self, group: &str, ops: &[&str]) -> Result<(), (String, String)> {
        let mut args = vec!["alter", group];
        args.extend_from_slice(ops);
        self.run(&args).map(drop)
    }

    /// DescribeConfigs of `group`: every config by name.
    fn describe(&self, group: &str) -> Result<serde_json::Value, (String, String)> {
        self.run(&["describe", group])
            .map(|answer| answer["configs"].clone())
    }

    /// `name`'s value and source as DescribeConfigs reports them.
    fn described(&self, group: &str, name: &str) -> (String, String) {
        let configs = self.describe(group).unwrap();
        let entry = &configs[name];
        assert!(entry.is_object(), "{name} is not described: {configs}");
        (
            entry["value"].as_str().unwrap().to_owned(),
            entry["source"].as_str().unwrap().to_owned(),
        )
    }
}

/// The name of the error an alter was refused with.
fn refused(result: Result<(), (String, String)>) -> String {
    match result {
        Ok(()) => panic!("the change was made"),
        Err((name, _)) => name,
    }
}

fn pair(value: &str, source: &str) -> (String, String) {
    (value.to_owned(), source.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_configs_are_set_described_refused_and_kept_across_a_crash() {
    let mut broker = BrokerProcess::start(&[]);
    let client = Librdkafka::of(&broker);
    // The group has no member and has never existed: it may have configs.
    let group = "orders-queue";
    let lock = "share.record.lock.duration.ms";
    let reset = "share.auto.offset.reset";
    let isolation = "share.isolation.level";
    assert_eq!(
        client.described(group, lock),
        pair("30000", "DEFAULT_CONFIG")
    );

    assert_eq!(
        client.alter(
            group,
            &[
                &format!("SET:{reset}=earliest"),
                &format!("SET:{lock}=20000")
            ],
        ),
        Ok(())
    );
    assert_eq!(
        client.described(group, reset),
        pair("earliest", "GROUP_CONFIG")
    );
    assert_eq!(client.described(group, lock), pair("20000", "GROUP_CONFIG"));
    assert_eq!(
        client.described(group, isolation),
        pair("read_uncommitted", "DEFAULT_CONFIG")
    );

    // validate_only: checked, and nothing changes.
    assert_eq!(
        client.alter(
            group,
            &[
                "--validate-only",
                &format!("SET:{isolation}=read_committed")
            ],
        ),
        Ok(())
    );
    assert_eq!(
        refused(client.alter(group, &["--validate-only", &format!("SET:{lock}=1")])),
        "INVALID_CONFIG"
    );
    assert_eq!(
        client.described(group, isolation),
        pair("read_uncommitted", "DEFAULT_CONFIG")
    );

    // An unknown name, a value outside the broker's bounds
    // (group.share.max.record.lock.duration.ms, 60000) and a reset that is
    // not one: INVALID_CONFIG, and the valid change beside them is not
    // made either.
    for bad in [
        "SET:share.no.such.config=1",
        "SET:share.record.lock.duration.ms=60001",
        "SET:share.auto.offset.reset=by_duration:yesterday",
    ] {
        assert_eq!(
            refused(client.alter(group, &[&format!("SET:{isolation}=read_committed"), bad])),
            "INVALID_CONFIG",
            "{bad}"
        );
    }
    // No group config is a list: APPEND is refused as Kafka refuses it.
    let (error, message) = client
        .alter(group, &[&format!("APPEND:{isolation}=read_committed")])
        .unwrap_err();
    assert_eq!(error, "INVALID_CONFIG");
    assert!(message.contains("not LIST"), "{message}");
    assert_eq!(
        client.described(group, isolation),
        pair("read_uncommitted", "DEFAULT_CONFIG")
    );
    assert_eq!(client.described(group, lock), pair("20000", "GROUP_CONFIG"));

    // Deleted: the broker's default is back; the other stays.
    assert_eq!(client.alter(group, &[&format!("DELETE:{lock}")]), Ok(()));
    assert_eq!(
        client.described(group, lock),
        pair("30000", "DEFAULT_CONFIG")
    );
    assert_eq!(
        client.described(group, reset),
        pair("earliest", "GROUP_CONFIG")
    );

    // The legacy AlterConfigs (the rdkafka crate's) replaces a group's
    // configs wholesale.
    let admin = broker.admin();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let legacy = "billing-queue";
    let set = AlterConfig::new(ResourceSpecifier::Group(legacy))
        .set("share.session.timeout.ms", "50000")
        .set(reset, "by_duration:PT1H");
    // (The crate drops a resource's error: what counts is what is
    // described.)
    admin.alter_configs([&set], &options).await.unwrap();
    assert_eq!(
        client.described(legacy, "share.session.timeout.ms"),
        pair("50000", "GROUP_CONFIG")
    );
    let set = AlterConfig::new(ResourceSpecifier::Group(legacy)).set(reset, "latest");
    admin.alter_configs([&set], &options).await.unwrap();
    assert_eq!(
        client.described(legacy, reset),
        pair("latest", "GROUP_CONFIG")
    );
    assert_eq!(
        client.described(legacy, "share.session.timeout.ms"),
        pair("45000", "DEFAULT_CONFIG")
    );

    // ListConfigResources lists the groups with configs.
    let out =
        common::security::python_client("kafka_python_config_resources.py", &[&broker.bootstrap])
            .unwrap();
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        listed["every"]["group"],
        serde_json::json!([legacy, group]),
        "{listed}"
    );

    // Kept in the metadata log across a kill -9.
    broker.kill();
    broker.restart();
    assert_eq!(
        client.described(group, reset),
        pair("earliest", "GROUP_CONFIG")
    );
    assert_eq!(
        client.described(legacy, reset),
        pair("latest", "GROUP_CONFIG")
    );
    assert_eq!(
        client.described(group, lock),
        pair("30000", "DEFAULT_CONFIG")
    );
}

#[test]
fn a_groups_values_are_checked_against_the_brokers_bounds_as_configured() {
    // A broker that allows record locks of up to 2 minutes: 90 s passes
    // here, as it would not under Kafka's default 60 s; and share session
    // timeouts and heartbeat intervals down to a second.
    let broker = BrokerProcess::start(&[
        "--set",
        "group.share.max.record.lock.duration.ms=120000",
        "--set",
        "group.share.record.lock.duration.ms=40000",
        "--set",
        "group.share.min.session.timeout.ms=1000",
        "--set",
        "group.share.min.heartbeat.interval.ms=1000",
    ]);
    let client = Librdkafka::of(&broker);
    let lock = "share.record.lock.duration.ms";
    // The broker's own value, from its flags.
    assert_eq!(
        client.described("g", lock),
        pair("40000", "STATIC_BROKER_CONFIG")
    );
    assert_eq!(client.alter("g", &[&format!("SET:{lock}=90000")]), Ok(()));
    assert_eq!(client.described("g", lock), pair("90000", "GROUP_CONFIG"));
    assert_eq!(
        refused(client.alter("g", &[&format!("SET:{lock}=120001")])),
        "INVALID_CONFIG"
    );
    // A session timeout must exceed the heartbeat interval (the broker's
    // 5000 standing in for the group's own).
    let (error, message) = client
        .alter("g", &["SET:share.session.timeout.ms=5000"])
        .unwrap_err();
    assert_eq!(error, "INVALID_CONFIG");
    assert_eq!(
        message,
        "share.session.timeout.ms must be greater than share.heartbeat.interval.ms"
    );
    assert_eq!(
        client.alter(
            "g",
            &[
                "SET:share.session.timeout.ms=5000",
                "SET:share.heartbeat.interval.ms=4000"
            ]
        ),
        Ok(())
    );
    assert_eq!(
        client.described("g", "share.session.timeout.ms"),
        pair("5000", "GROUP_CONFIG")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_configs_need_describe_configs_and_alter_configs_on_the_group() {
    use common::security::{rill_acl, rill_user, sasl_client, secured_broker};

    let temp = tempfile::tempdir().unwrap();
    let (broker, sasl) = secured_broker(&temp);
    rill_user(&broker, &["create", "alice"], "alice-secret");
    let alice = Librdkafka::sasl(&sasl, "alice", "alice-secret");
    let set = "SET:share.session.timeout.ms=50000";
    let refusal = |result: Result<serde_json::Value, (String, String)>| match result {
        Ok(answer) => panic!("answered {answer}"),
        Err((name, _)) => name,
    };
    // Kafka's errors for the GROUP resource, even for a group that does
    // not exist.
    assert_eq!(
        refusal(alice.describe("billing")),
        "GROUP_AUTHORIZATION_FAILED"
    );
    assert_eq!(
        refused(alice.alter("billing", &[set])),
        "GROUP_AUTHORIZATION_FAILED"
    );
    // Nor through the legacy AlterConfigs (the rdkafka crate's, which
    // drops a resource's error: an administrator sees nothing changed).
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        sasl_client(&sasl, "SCRAM-SHA-512", "alice", "alice-secret")
            .create()
            .unwrap();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let legacy = AlterConfig::new(ResourceSpecifier::Group("billing"))
        .set("share.session.timeout.ms", "50000");
    admin.alter_configs([&legacy], &options).await.unwrap();
    assert_eq!(
        Librdkafka::of(&broker).described("billing", "share.session.timeout.ms"),
        pair("45000", "DEFAULT_CONFIG")
    );

    for operation in ["DescribeConfigs", "AlterConfigs"] {
        rill_acl(
            &broker,
            &[
                "add",
                "--allow-principal",
                "User:alice",
                "--operation",
                operation,
                "--group",
                "billing",
            ],
        )
        .unwrap();
    }
    assert_eq!(alice.alter("billing", &[set]), Ok(()));
    assert_eq!(
        alice.described("billing", "share.session.timeout.ms"),
        pair("50000", "GROUP_CONFIG")
    );
    // Another group stays out of reach.
    assert_eq!(
        refusal(alice.describe("payroll")),
        "GROUP_AUTHORIZATION_FAILED"
    );
    assert_eq!(
        refused(alice.alter("payroll", &[set])),
        "GROUP_AUTHORIZATION_FAILED"
    );
}
