//! Topics the engine creates itself: a stream's repartition topic (docs/SCALE_OUT.md,
//! "Repartition topics"). Inputs and outputs of the YAML never create topics.

use super::KafkaInputConfig;
use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Makes sure `topic` exists on the brokers of `input`, with as many partitions as the input's
/// topics have (their largest count) when it is created; returns its partition count. A topic that
/// exists is used as it is: its partition count is part of the state's layout (a key's partition,
/// so its key group), which is why it is never changed here.
pub fn ensure_repartition_topic(input: &KafkaInputConfig, topic: &str) -> anyhow::Result<usize> {
    let mut cc = super::client_config(&input.brokers, &input.client_id, &input.options);
    // A metadata request must not create the topic with the broker's default partition count.
    cc.set("allow.auto.create.topics", "false");
    let admin: AdminClient<DefaultClientContext> = cc.create().context("kafka: creating an admin client")?;
    if let Some(n) = partitions(&admin, topic)? {
        return Ok(n);
    }
    let mut wanted = 0;
    for t in &input.topics {
        wanted = wanted.max(partitions(&admin, t)?.with_context(|| format!("kafka input: topic `{t}` does not exist on {}", input.brokers.join(",")))?);
    }
    // -1: the broker's default replication factor (KIP-464).
    let new = NewTopic::new(topic, wanted as i32, TopicReplication::Fixed(-1));
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results =
        crate::state::backend::block_on(admin.create_topics([&new], &opts)).with_context(|| format!("kafka: creating repartition topic `{topic}`"))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => bail!("kafka: creating repartition topic `{t}` with {wanted} partitions: {e} (create it yourself with the input's partition count)"),
        }
    }
    tracing::info!(topic, partitions = wanted, "kafka: created repartition topic");
    // The brokers' metadata may lag the creation.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(n) = partitions(&admin, topic)? {
            return Ok(n);
        }
        if Instant::now() > deadline {
            bail!("kafka: repartition topic `{topic}` was created but its metadata did not show it within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The partition count of `topic`, None when it does not exist.
fn partitions(admin: &AdminClient<DefaultClientContext>, topic: &str) -> anyhow::Result<Option<usize>> {
    let md = admin.inner().fetch_metadata(Some(topic), TIMEOUT).with_context(|| format!("kafka: metadata of topic `{topic}`"))?;
    Ok(md.topics().iter().find(|t| t.name() == topic).filter(|t| t.error().is_none() && !t.partitions().is_empty()).map(|t| t.partitions().len()))
}
