//! The transactional Kafka sink's rdkafka call sequence against librdkafka's mock cluster
//! (in-process brokers on 127.0.0.1). The mock accepts the transactional API but does not enforce
//! its semantics (TOOLCHAINS.md), so this is an API-flow test: every call of the protocol, in the
//! protocol's order, succeeds against librdkafka's own broker implementation. The semantics of
//! each crash window are unit-tested against the scripted fake in `src/connectors/kafka/txn_tests.rs`. The
//! capability probe is checked against the same mock with EndTxn switched off.

use arkflow::connectors::kafka::txn::{DecisionRecord, TxnClient, TxnSink};
use arkflow::connectors::kafka::{probe, Acks, Compression, KafkaMetrics, KafkaOutputConfig as KafkaOutput, RdTxnClient};
use arkflow::record::Record;
use rdkafka::mocking::MockCluster;
use rdkafka::types::RDKafkaApiKey;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

fn output(brokers: &str) -> KafkaOutput {
    KafkaOutput {
        brokers: vec![brokers.to_string()],
        topic: "out".into(),
        topic_field: None,
        key_field: None,
        key_fields: Vec::new(),
        headers: Default::default(),
        compression: Compression::None,
        acks: Acks::All,
        idempotent: true,
        exactly_once: true,
        exactly_once_mode: arkflow::connectors::kafka::ExactlyOnceMode::Transactions,
        control_topic: "arkflow-control".into(),
        client_id: "arkflow-mock-test".into(),
        options: Default::default(),
    }
}

fn recs(epoch: u64, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record { key: Some(format!("k{i}").into_bytes()), value: Some(format!("{{\"e\":{epoch},\"i\":{i}}}").into_bytes()), ..Default::default() })
        .collect()
}

#[test]
fn transactional_sink_call_sequence_runs_against_the_mock_cluster() {
    let mock = MockCluster::new(3).unwrap();
    mock.create_topic("out", 4, 3).unwrap();
    mock.create_topic("in", 2, 3).unwrap();
    mock.create_topic("arkflow-control", 1, 3).unwrap();
    let brokers = mock.bootstrap_servers();
    probe::require_transactions(std::slice::from_ref(&brokers)).expect("the mock advertises the transaction APIs");

    let metrics = Arc::new(KafkaMetrics::default());
    let client: Box<dyn TxnClient> = Box::new(RdTxnClient::new(output(&brokers), "arkflow-mock", Some("mock-in-group")).unwrap());
    let (sink, last) = TxnSink::recover(client, "mock", metrics.clone()).expect("init_transactions on both slots, read the last decision");
    assert_eq!(last, None, "a new cluster holds no decision");
    let offsets = serde_json::json!({"kafka": {"in": {"0": 10, "1": 7}}});
    let decision = |epoch| DecisionRecord { stream: "mock".into(), epoch, manifest: format!("op/manifests/{epoch:012}"), checksum: 42, generation: 1 };

    sink.write(1, &recs(1, 100)).unwrap();
    sink.prepare(1).unwrap();
    assert_eq!(metrics.active_transactions.load(SeqCst), 1);
    sink.write(2, &recs(2, 50)).unwrap();
    assert_eq!(metrics.active_transactions.load(SeqCst), 2, "epoch 2 flows in the other slot while 1 waits");
    sink.commit_epoch(&decision(1), &offsets).expect("control record, send_offsets_to_transaction for both groups, commit");
    sink.prepare(2).unwrap();
    sink.commit_epoch(&decision(2), &offsets).unwrap();
    sink.prepare(3).unwrap();
    sink.commit_epoch(&decision(3), &serde_json::Value::Null).expect("an epoch without records or input offsets commits too");
    assert_eq!(metrics.transactions_committed.load(SeqCst), 3);
    assert_eq!(metrics.active_transactions.load(SeqCst), 0);

    // The abort path and a second instance fencing the first (init_transactions on the same ids).
    let other = RdTxnClient::new(output(&brokers), "arkflow-mock", None).unwrap();
    other.init(0).unwrap();
    other.begin(0).unwrap();
    other.send(0, &recs(9, 3)).unwrap();
    other.flush(0).unwrap();
    other.abort(0).unwrap();
    other.last_decision().expect("OffsetFetch of the decision group");
}

#[test]
fn probe_names_end_txn_when_the_broker_does_not_serve_it() {
    let mock = MockCluster::new(1).unwrap();
    let brokers = mock.bootstrap_servers();
    probe::require_transactions(std::slice::from_ref(&brokers)).unwrap();
    mock.apiversion(RDKafkaApiKey::EndTxn, None, None).unwrap();
    let e = probe::require_transactions(std::slice::from_ref(&brokers)).unwrap_err().to_string();
    assert!(e.contains("EndTxn (API key 26)") && e.contains(&brokers), "{e}");
}
