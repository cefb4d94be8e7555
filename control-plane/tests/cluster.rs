//! Integration tests: three real `rk-control-plane` processes on loopback,
//! real RocksDB on disk, real mutual TLS. Faults are real too: `kill -9`.

use rk_client::{ApiError, Client, DeleteOptions, ListParams, Reason, WatchEventType};
use rk_proto::v1 as pb;
use rk_testkit::Cluster;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn cm(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "default", "labels": {"test": "rk"}},
           "data": {"value": value}})
}

fn value_of(o: &Value) -> &str {
    o["data"]["value"].as_str().unwrap_or("")
}

fn rv(o: &Value) -> u64 {
    o["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_any_replica_are_read_from_every_replica() {
    let cluster = Cluster::start(3);
    for i in 0..3 {
        let c = cluster.client_for(i);
        let created = c
            .create("configmaps", &cm(&format!("via-{i}"), &i.to_string()))
            .await
            .expect("create");
        assert!(rv(&created) > 0);
    }
    for i in 0..3 {
        let c = cluster.client_for(i);
        for j in 0..3 {
            let got = c
                .get("configmaps", "default", &format!("via-{j}"))
                .await
                .expect("linearizable get");
            assert_eq!(value_of(&got), j.to_string());
        }
        let (items, list_rev) = c
            .list(
                "configmaps",
                &ListParams {
                    namespace: Some("default".into()),
                    label_selector: "test=rk".into(),
                    ..Default::default()
                },
            )
            .await
            .expect("list");
        assert_eq!(items.len(), 3, "replica {i} lists every object");
        assert!(items.iter().all(|o| rv(o) <= list_rev));
    }
    // Revisions are strictly increasing across the cluster.
    let c = cluster.client();
    let a = c.create("configmaps", &cm("r1", "x")).await.expect("create");
    let b = c.create("configmaps", &cm("r2", "x")).await.expect("create");
    assert!(rv(&b) > rv(&a));
    // Replicas of one version replicate on the AppendEntries stream.
    assert!(!cluster.logs().contains("replica has no AppendEntries stream"));
}

/// Replicas from before AppendEntriesStream answer it "unimplemented"; a
/// leader then replicates to them with unary calls, so a cluster can be
/// upgraded one replica at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_replicate_by_unary_calls_to_replicas_without_the_append_stream() {
    let cluster = Cluster::start_with(3, &["--test-without-append-stream"]);
    create_numbered(&cluster.client(), "unary", 20).await;
    for i in 0..3 {
        let c = cluster.client_for(i);
        let got = c
            .get("configmaps", "default", "unary-19")
            .await
            .unwrap_or_else(|e| panic!("replica {i}: {e}\n{}", cluster.logs()));
        assert_eq!(value_of(&got), "19");
    }
    assert!(
        cluster
            .logs()
            .contains("replica has no AppendEntries stream; using unary calls"),
        "the leader fell back to unary calls:\n{}",
        cluster.logs()
    );
}

/// SIGTERM stops a follower gracefully even while the leader keeps its
/// AppendEntries stream open: the stream ends with the server, instead of
/// holding the graceful shutdown until the test harness kills the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_stops_on_sigterm_while_the_leader_streams_to_it() {
    let mut cluster = Cluster::start(3);
    create_numbered(&cluster.client(), "term", 5).await;
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("no leader\n{}", cluster.logs()));
    let follower = (leader + 1) % 3;
    let asked = std::time::Instant::now();
    // stop() sends SIGTERM and kills the process only after 10 s.
    cluster.replicas[follower].stop();
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "the follower took {:?} to stop\n{}",
        asked.elapsed(),
        cluster.replicas[follower].log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_update_is_a_conflict_and_errors_are_typed() {
    let cluster = Cluster::start(1);
    let c = cluster.client();
    let v1 = c.create("configmaps", &cm("x", "1")).await.expect("create");
    let mut upd = v1.clone();
    upd["data"]["value"] = json!("2");
    let v2 = c.update("configmaps", &upd).await.expect("update with fresh rv");
    assert!(rv(&v2) > rv(&v1));
    // The same resourceVersion again is now stale.
    let err = c.update("configmaps", &upd).await.expect_err("stale update");
    assert_eq!(err.reason, Reason::Conflict, "{err:?}");
    assert_eq!(
        value_of(&c.get("configmaps", "default", "x").await.expect("get")),
        "2"
    );

    let err = c
        .create("configmaps", &cm("x", "3"))
        .await
        .expect_err("duplicate");
    assert_eq!(err.reason, Reason::AlreadyExists);
    let err = c.get("configmaps", "default", "nope").await.expect_err("missing");
    assert_eq!(err.reason, Reason::NotFound);
    assert_eq!(err.message, "configmaps \"nope\" not found");
    let err = c
        .delete(
            "configmaps",
            "default",
            "x",
            &DeleteOptions {
                precondition_resource_version: Some("1".into()),
                ..Default::default()
            },
        )
        .await
        .expect_err("stale delete");
    assert_eq!(err.reason, Reason::Conflict);

    // Unknown fields are refused with the field named, nothing stored.
    let bad = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox", "imagee": "x"}]}}}});
    let err = c
        .create("deployments.apps", &bad)
        .await
        .expect_err("unknown field");
    assert_eq!(
        err.field.as_deref(),
        Some("spec.template.spec.containers[0].imagee"),
        "{err:?}"
    );
    assert_eq!(
        c.get("deployments.apps", "default", "web")
            .await
            .expect_err("not stored")
            .reason,
        Reason::NotFound
    );

    // Status updates do not bump generation; spec updates do.
    let mut good = bad.clone();
    good["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .expect("obj")
        .remove("imagee");
    let d = c
        .create("deployments.apps", &good)
        .await
        .expect("create deployment");
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate", "defaults applied");
    // The Deployment controller writes this object too, so each change is
    // made the way every client must: read, modify, write with the read
    // resourceVersion, and retry on Conflict.
    let d2 = loop {
        let mut st = c.get("deployments.apps", "default", "web").await.expect("get");
        st["status"]["collisionCount"] = json!(7);
        match c.update_status("deployments.apps", &st).await {
            Ok(v) => break v,
            Err(e) if e.reason == Reason::Conflict => continue,
            Err(e) => panic!("status update: {e:?}"),
        }
    };
    assert_eq!(
        d2["metadata"]["generation"], 1,
        "a status update leaves generation alone"
    );
    assert_eq!(d2["status"]["collisionCount"], 7);
    let (before, d3) = loop {
        let mut sp = c.get("deployments.apps", "default", "web").await.expect("get");
        let before = sp["status"].clone();
        sp["spec"]["replicas"] = json!(3);
        sp["status"] = json!({"replicas": 99});
        match c.update("deployments.apps", &sp).await {
            Ok(v) => break (before, v),
            Err(e) if e.reason == Reason::Conflict => continue,
            Err(e) => panic!("spec update: {e:?}"),
        }
    };
    assert_eq!(d3["metadata"]["generation"], 2, "a spec update bumps generation");
    assert_eq!(d3["status"], before, "a spec update leaves status alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_are_all_or_nothing() {
    let cluster = Cluster::start(1);
    let c = cluster.client();
    c.create("configmaps", &cm("held", "1")).await.expect("create");
    let (_, start) = c.list("configmaps", &ListParams::default()).await.expect("list");
    let mut rx = c.watch(pb::WatchRequest {
        resource: "configmaps".into(),
        since_revision: start,
        ..Default::default()
    });
    let create = |name: &str| pb::TxnOp {
        op: Some(pb::txn_op::Op::Create(pb::CreateRequest {
            resource: "configmaps".into(),
            object: serde_json::to_vec(&cm(name, "t")).expect("json"),
            dry_run: false,
        })),
        check_resource_version: String::new(),
    };
    let err = c
        .txn(vec![create("t1"), create("held")])
        .await
        .expect_err("second op fails");
    assert_eq!(err.reason, Reason::AlreadyExists);
    assert_eq!(
        c.get("configmaps", "default", "t1")
            .await
            .expect_err("rolled back")
            .reason,
        Reason::NotFound
    );
    let (rev, objs) = c.txn(vec![create("t1"), create("t2")]).await.expect("txn");
    assert_eq!(objs.len(), 2);
    assert_eq!(rv(&objs[0]), rev);
    assert_eq!(rv(&objs[1]), rev, "one revision for the whole transaction");
    // A watcher gets one event per object of the transaction, all at its
    // revision (not only the first of them).
    let mut added = vec![];
    while added.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("saw only {added:?}"))
            .expect("watch open")
            .expect("watch event");
        if ev.kind == WatchEventType::Added {
            added.push((
                ev.object["metadata"]["name"].as_str().unwrap_or("").to_string(),
                ev.revision,
            ));
        }
    }
    assert_eq!(added, vec![("t1".to_string(), rev), ("t2".to_string(), rev)]);
}

/// Writes from `writers` tasks until `stop`, recording every write the
/// store acknowledged (name → value).
async fn write_load(c: Client, prefix: &str, n: usize, acked: Arc<Mutex<BTreeMap<String, String>>>) {
    for i in 0..n {
        let name = format!("{prefix}-{i}");
        let value = format!("v{i}");
        match c.create("configmaps", &cm(&name, &value)).await {
            Ok(_) => {
                acked.lock().expect("lock").insert(name, value);
            }
            // A retried create whose first attempt landed reports
            // AlreadyExists: not acknowledged by us, but not lost either.
            Err(ApiError {
                reason: Reason::AlreadyExists,
                ..
            }) => {}
            Err(e) if e.reason == Reason::ServiceUnavailable => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("unexpected write error: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill9_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader(Duration::from_secs(10)).await.expect("leader");
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let writer = tokio::spawn(write_load(cluster.client(), "ack", 300, acked.clone()));
    // Let some writes land, then kill the leader mid-stream.
    while acked.lock().expect("lock").len() < 50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.kill(leader);
    writer.await.expect("writer");
    let new_leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("a new leader");
    assert_ne!(new_leader, leader);
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= 200,
        "most writes succeed through the failover: {}",
        acked.len()
    );
    // Bring the old leader back; it must catch up and agree.
    cluster.restart(leader);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..3 {
        let c = cluster.client_for(i);
        let items = configmaps_in_default(&c)
            .await
            .unwrap_or_else(|e| panic!("list on replica {i}: {e:?}\n{}", cluster.logs()));
        let stored: BTreeMap<String, String> = items
            .iter()
            .map(|o| {
                (
                    o["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    value_of(o).to_string(),
                )
            })
            .collect();
        for (k, v) in &acked {
            assert_eq!(
                stored.get(k),
                Some(v),
                "acknowledged write {k} missing on replica {i}"
            );
        }
    }
}

/// Creates ConfigMaps `{prefix}-0`, `{prefix}-1`, ... (each holding its
/// number) one after another; returns their revisions.
async fn create_numbered(c: &Client, prefix: &str, n: usize) -> Vec<u64> {
    let mut revs = Vec::with_capacity(n);
    for i in 0..n {
        let created = c
            .create("configmaps", &cm(&format!("{prefix}-{i}"), &i.to_string()))
            .await
            .expect("create");
        revs.push(rv(&created));
    }
    revs
}

/// Every ConfigMap in the default namespace (a linearizable list).
async fn configmaps_in_default(c: &Client) -> Result<Vec<Value>, ApiError> {
    let params = ListParams {
        namespace: Some("default".into()),
        ..Default::default()
    };
    Ok(c.list("configmaps", &params).await?.0)
}

/// Waits until restarted replicas have elected a leader.
async fn leader_after_restart(cluster: &Cluster) {
    cluster
        .leader(Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("no leader after restart\n{}", cluster.logs()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_every_replica_recovers_the_state() {
    let mut cluster = Cluster::start(3);
    let revs = create_numbered(&cluster.client(), "keep", 20).await;
    for i in 0..3 {
        cluster.kill(i);
    }
    for i in 0..3 {
        cluster.restart(i);
    }
    leader_after_restart(&cluster).await;
    let c = cluster.client();
    for (i, want) in revs.iter().enumerate() {
        let o = c
            .get("configmaps", "default", &format!("keep-{i}"))
            .await
            .expect("survives restart");
        assert_eq!(rv(&o), *want);
    }
    let after = c
        .create("configmaps", &cm("after", "x"))
        .await
        .expect("write after restart");
    assert!(
        rv(&after) > *revs.last().expect("revs"),
        "revisions keep increasing after restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_after_purging_its_log_recovers_every_object() {
    // The state machine's writes skip RocksDB's WAL: a killed replica
    // comes back at its last memtable flush and applies the log again from
    // there. With a snapshot every 50 entries, openraft purges the log once
    // 256 entries are behind a snapshot (its purge batch), here at about
    // entry 350; a purge that deleted entries not yet flushed would lose
    // objects.
    let mut cluster = Cluster::start_with(1, &["--snapshot-every", "50"]);
    let revs = create_numbered(&cluster.client(), "p", 400).await;
    cluster.kill(0);
    cluster.restart(0);
    leader_after_restart(&cluster).await;
    let c = cluster.client();
    let items = configmaps_in_default(&c).await.expect("list after restart");
    assert_eq!(items.len(), 400, "every object survives\n{}", cluster.logs());
    for (i, want) in revs.iter().enumerate().step_by(37) {
        let o = c
            .get("configmaps", "default", &format!("p-{i}"))
            .await
            .expect("survives restart");
        assert_eq!((rv(&o), value_of(&o)), (*want, i.to_string().as_str()));
    }
    let after = c
        .create("configmaps", &cm("after", "x"))
        .await
        .expect("write after restart");
    assert!(rv(&after) > *revs.last().expect("revs"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_every_change_once_across_a_leader_change() {
    let mut cluster = Cluster::start(3);
    let c = cluster.client();
    let (_, start) = c.list("configmaps", &ListParams::default()).await.expect("list");
    let mut rx = c.watch(pb::WatchRequest {
        resource: "configmaps".into(),
        since_revision: start,
        bookmark_interval_ms: 200,
        ..Default::default()
    });
    let leader = cluster.leader(Duration::from_secs(10)).await.expect("leader");
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let writer = tokio::spawn(write_load(cluster.client(), "w", 200, acked.clone()));
    while acked.lock().expect("lock").len() < 60 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.kill(leader);
    writer.await.expect("writer");
    let acked = acked.lock().expect("lock").clone();
    // Collect ADDED events until every acknowledged write has been seen.
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut revisions = vec![];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !acked.keys().all(|k| seen.contains_key(k)) {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "timed out; saw {} of {}\n{}",
                    seen.len(),
                    acked.len(),
                    cluster.logs()
                )
            })
            .expect("watch open")
            .expect("watch event");
        if ev.kind == WatchEventType::Bookmark {
            continue;
        }
        assert_eq!(ev.kind, WatchEventType::Added);
        let name = ev.object["metadata"]["name"].as_str().unwrap_or("").to_string();
        assert!(
            seen.insert(name.clone(), ev.revision).is_none(),
            "duplicate event for {name}"
        );
        revisions.push(ev.revision);
    }
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "revisions strictly increase: {revisions:?}"
    );
    let distinct: BTreeSet<_> = revisions.iter().collect();
    assert_eq!(distinct.len(), revisions.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_grows_and_shrinks_online() {
    let mut cluster = Cluster::start(3);
    let c = cluster.client();
    c.create("configmaps", &cm("before", "1")).await.expect("write");
    let a = cluster.add_join();
    let b = cluster.add_join();
    let c = cluster.client();
    let mut cc = pb::cluster_client::ClusterClient::new(c.channel());
    let m = cc
        .members(pb::MembersRequest {})
        .await
        .expect("members")
        .into_inner();
    assert_eq!(m.members.iter().filter(|m| m.voter).count(), 5);
    // The new replicas serve linearizable reads of old data.
    assert_eq!(
        value_of(
            &cluster
                .client_for(a)
                .get("configmaps", "default", "before")
                .await
                .expect("get")
        ),
        "1"
    );
    for idx in [a, b] {
        let id = m
            .members
            .iter()
            .find(|x| x.addr == cluster.replicas[idx].addr)
            .expect("member")
            .id;
        cc.remove_replica(pb::RemoveReplicaRequest { id })
            .await
            .expect("remove");
    }
    let m = cc
        .members(pb::MembersRequest {})
        .await
        .expect("members")
        .into_inner();
    assert_eq!(m.members.iter().filter(|m| m.voter).count(), 3);
    cluster.kill(a);
    cluster.kill(b);
    let c = cluster.client_for(0);
    c.create("configmaps", &cm("after", "1"))
        .await
        .expect("write after shrinking");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_cluster_certificate_are_refused() {
    let cluster = Cluster::start(1);
    let addr = cluster.replicas[0].addr.clone();
    let conf =
        rk_client::config::ConfigFile::load(&cluster.replicas[0].dir.join("admin.conf")).expect("conf");
    let r = conf
        .resolve(std::path::Path::new("admin.conf"), None)
        .expect("resolve");

    // No client certificate: TLS completes (Join must stay reachable), but
    // every API call is refused.
    let ep = rk_client::tls::endpoint(&addr, None, &r.ca_pem).expect("endpoint");
    let ch = ep.connect().await.expect("tls without client cert");
    let err = pb::api_client::ApiClient::new(ch.clone())
        .get(pb::GetRequest {
            r#ref: Some(pb::ObjectRef {
                resource: "namespaces".into(),
                namespace: String::new(),
                name: "default".into(),
            }),
            consistency: 0,
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let err = pb::cluster_client::ClusterClient::new(ch)
        .join(pb::JoinRequest {
            token: "rk1.".to_string() + &"0".repeat(64) + ".0123456789abcdef0123",
            role: "replica".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad token refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    // A certificate from another CA fails the handshake.
    let ca = rk_control_plane::pki::CertificateAuthority::generate("other").expect("ca");
    let leaf = ca.issue("rk:admin", &[]).expect("leaf");
    let foreign = rk_client::tls::TlsIdentity {
        ca_pem: r.ca_pem.clone(),
        cert_pem: leaf.cert_pem,
        key_pem: leaf.key_pem,
    };
    let c = Client::new(vec![addr.clone()], foreign).expect("client");
    let mut c = c;
    c.failover_timeout = Duration::from_millis(200);
    let err = c
        .get("namespaces", "", "default")
        .await
        .expect_err("foreign CA refused");
    assert_eq!(err.reason, Reason::ServiceUnavailable, "{err:?}");

    // The real admin identity works.
    let ok = cluster
        .client()
        .get("namespaces", "", "default")
        .await
        .expect("admin get");
    assert_eq!(ok["metadata"]["name"], "default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_joins_late_catches_up_from_a_snapshot() {
    let cluster = a_late_joiner_catches_up_from_a_snapshot(&[]).await;
    assert!(
        !cluster.logs().contains("replica has no InstallSnapshotChunk"),
        "replicas of one version send snapshot data as bytes"
    );
}

/// A replica from before InstallSnapshotChunk answers it "unimplemented";
/// a leader then sends it the snapshot's chunks as JSON, so a cluster can
/// be upgraded one replica at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_of_an_older_version_is_sent_the_snapshot_as_json() {
    let cluster = a_late_joiner_catches_up_from_a_snapshot(&["--test-without-append-stream"]).await;
    assert!(
        cluster
            .logs()
            .contains("replica has no InstallSnapshotChunk; sending snapshot chunks as JSON"),
        "the leader fell back to JSON chunks:\n{}",
        cluster.logs()
    );
}

/// One replica writes 400 objects, then a second joins and must catch up
/// from a snapshot; returns the two-replica cluster.
async fn a_late_joiner_catches_up_from_a_snapshot(extra: &[&str]) -> Cluster {
    // Snapshots every 50 entries, so the log the newcomer would need is
    // long purged (openraft purges once 256 entries are behind a snapshot,
    // here at about entry 350) and it must install a snapshot over the
    // network. The objects are large enough (10 KB, so about 8 MB with the
    // history) that the snapshot travels in several chunks, written into
    // the receiving file at their offsets.
    let args: Vec<&str> = ["--snapshot-every", "50"].iter().chain(extra).copied().collect();
    let mut cluster = Cluster::start_with(1, &args);
    let c = cluster.client();
    let filler = "x".repeat(10_000);
    let value = |i: usize| format!("{i}-{filler}");
    for i in 0..400 {
        c.create("configmaps", &cm(&format!("s-{i}"), &value(i)))
            .await
            .expect("create");
    }
    let joined = cluster.add_join();
    let fresh = cluster.client_for(joined);
    let (items, _) = fresh
        .list(
            "configmaps",
            &ListParams {
                namespace: Some("default".into()),
                local: false,
                ..Default::default()
            },
        )
        .await
        .expect("linearizable list on the newcomer (waits until it has applied everything)");
    assert_eq!(
        items.len(),
        400,
        "the newcomer has every object\n{}",
        cluster.logs()
    );
    assert!(
        cluster.replicas[joined]
            .log()
            .contains("installed a snapshot from the leader"),
        "the newcomer caught up from a snapshot, not from the log\n{}",
        cluster.logs()
    );
    let last = fresh
        .get("configmaps", "default", "s-399")
        .await
        .expect("get on the newcomer");
    assert_eq!(value_of(&last), value(399), "objects arrive whole");
    // Its watch history starts where the snapshot's retained history does,
    // and it keeps serving new writes.
    let after = fresh
        .create("configmaps", &cm("after", "x"))
        .await
        .expect("write via newcomer");
    assert_eq!(
        value_of(
            &cluster
                .client_for(0)
                .get("configmaps", "default", "after")
                .await
                .expect("get")
        ),
        "x"
    );
    assert!(rv(&after) > 400);
    cluster
}
