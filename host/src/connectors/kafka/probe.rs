//! Which Kafka APIs a broker serves, asked with the protocol's own ApiVersions request (v0), so
//! that `exactly_once` on a Kafka sink is refused by name when the broker lacks the transaction
//! APIs instead of failing at the first commit.

use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The APIs the transactional sink uses, with their Kafka protocol names.
pub const TRANSACTION_APIS: &[(i16, &str)] =
    &[(22, "InitProducerId"), (24, "AddPartitionsToTxn"), (25, "AddOffsetsToTxn"), (26, "EndTxn"), (28, "TxnOffsetCommit")];

/// The API keys one broker advertises (ApiVersions v0).
pub fn api_keys(broker: &str, timeout: Duration) -> anyhow::Result<Vec<i16>> {
    let addr = broker
        .to_socket_addrs()
        .with_context(|| format!("resolving Kafka broker {broker}"))?
        .next()
        .with_context(|| format!("Kafka broker {broker} resolves to no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to Kafka broker {broker}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let client = b"arkflow-probe";
    let mut req = Vec::new();
    req.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    req.extend_from_slice(&0i16.to_be_bytes()); // version 0
    req.extend_from_slice(&7i32.to_be_bytes()); // correlation id
    req.extend_from_slice(&(client.len() as i16).to_be_bytes());
    req.extend_from_slice(client);
    let mut frame = (req.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&req);
    s.write_all(&frame).with_context(|| format!("sending ApiVersions to {broker}"))?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).with_context(|| format!("reading ApiVersions from {broker}"))?;
    let len = i32::from_be_bytes(len);
    if !(10..=1 << 20).contains(&len) {
        bail!("Kafka broker {broker}: ApiVersions response of {len} bytes");
    }
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body).with_context(|| format!("reading ApiVersions from {broker}"))?;
    parse(&body).with_context(|| format!("Kafka broker {broker}: malformed ApiVersions response"))
}

fn parse(b: &[u8]) -> anyhow::Result<Vec<i16>> {
    let i16_at = |o: usize| b.get(o..o + 2).map(|x| i16::from_be_bytes([x[0], x[1]])).context("truncated");
    let corr = b.get(0..4).map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]])).context("truncated")?;
    if corr != 7 {
        bail!("correlation id {corr}");
    }
    let err = i16_at(4)?;
    if err != 0 {
        bail!("error code {err}");
    }
    let n = b.get(6..10).map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]])).context("truncated")?;
    (0..n.max(0) as usize).map(|i| i16_at(10 + i * 6)).collect()
}

/// Refuses unless some broker of `brokers` advertises every transaction API; the error names the
/// missing ones.
pub fn require_transactions(brokers: &[String]) -> anyhow::Result<()> {
    let mut last = None;
    for b in brokers.iter().flat_map(|b| b.split(',')).map(str::trim).filter(|b| !b.is_empty()) {
        match api_keys(b, Duration::from_secs(10)) {
            Ok(keys) => {
                let missing: Vec<String> = TRANSACTION_APIS.iter().filter(|(k, _)| !keys.contains(k)).map(|(k, n)| format!("{n} (API key {k})")).collect();
                if missing.is_empty() {
                    return Ok(());
                }
                bail!(
                    "the Kafka broker at {b} does not support transactions: it does not advertise {} in ApiVersions, so `exactly_once: true` on this kafka output cannot be honoured; set `exactly_once: false` (at-least-once), or write exactly-once to a `file` output, or use a broker with transaction support",
                    missing.join(", ")
                );
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no brokers configured")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(keys: &[i16]) -> Vec<u8> {
        let mut b = 7i32.to_be_bytes().to_vec();
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(keys.len() as i32).to_be_bytes());
        for k in keys {
            b.extend_from_slice(&k.to_be_bytes());
            b.extend_from_slice(&0i16.to_be_bytes());
            b.extend_from_slice(&3i16.to_be_bytes());
        }
        b
    }

    #[test]
    fn parses_api_keys_and_rejects_garbage() {
        assert_eq!(parse(&response(&[0, 1, 18, 26])).unwrap(), vec![0, 1, 18, 26]);
        assert!(parse(&response(&[0])[..8]).is_err());
        let mut bad = response(&[0]);
        bad[3] = 9;
        assert!(parse(&bad).is_err());
    }

    /// A one-shot fake broker answering ApiVersions with `keys`.
    fn fake_broker(keys: Vec<i16>) -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut len = [0u8; 4];
            s.read_exact(&mut len).unwrap();
            let mut req = vec![0u8; i32::from_be_bytes(len) as usize];
            s.read_exact(&mut req).unwrap();
            assert_eq!(&req[0..4], &[0, 18, 0, 0], "ApiVersions v0");
            let body = response(&keys);
            s.write_all(&(body.len() as i32).to_be_bytes()).unwrap();
            s.write_all(&body).unwrap();
        });
        addr
    }

    #[test]
    fn refusal_names_the_missing_transaction_api() {
        let without_end_txn = fake_broker(vec![0, 1, 3, 18, 22, 24, 25, 28]);
        let e = require_transactions(&[without_end_txn]).unwrap_err().to_string();
        assert!(e.contains("EndTxn (API key 26)") && !e.contains("InitProducerId"), "{e}");
        let full = fake_broker(vec![0, 1, 3, 18, 22, 24, 25, 26, 28]);
        require_transactions(&[full]).unwrap();
    }
}
