//! `redis` output: each record written to Redis by a command, a written batch as one
//! `MULTI`/`EXEC` transaction over one connection.
//!
//! Contract:
//! - `command` picks what a record does; `key` names the Redis key (the channel for `publish`),
//!   where `${key}` stands for the record's key (records without one are refused, naming the
//!   record's source position):
//!   - `rpush` (the default) / `lpush`: the value appended to the list `key`;
//!   - `set`: the value stored at `key` (with `ttl_ms`: expiring);
//!   - `hset`: the value stored in the hash `key`, its field the record's key;
//!   - `xadd`: a stream entry with the fields `value` (and `key`, when the record has one);
//!   - `publish`: the value published on the channel `key`.
//!
//!   Consecutive records of one list or one hash, and `set` without `ttl_ms`, share one variadic
//!   command (`RPUSH k v1 v2 …`, `HSET`, `MSET`), which Redis applies as the commands one by one.
//! - **Delivery.** A batch is written when its transaction ran, so a checkpoint is decided only
//!   after its records are in Redis. A lost connection or a timeout is retried `retry_count`
//!   times on a new connection (backing off from 100 ms, doubling, at most 5 s); a command Redis
//!   refuses (a key of another type, out of memory) fails the stream with Redis's message
//!   (Redis still ran the transaction's other commands: `EXEC` does not roll back). After
//!   a crash, what no decided checkpoint covers is written again: `set` and `hset` write the same
//!   values again (the result is the same), `rpush`, `lpush`, `xadd` and `publish` repeat them
//!   (at-least-once).

use super::Output;
use crate::config::{ConfigError, Ctx, SinkCaps, YPath};
use crate::connectors::registry::{Sink, SinkCx};
use crate::record::Record;
use std::time::Duration;

/// What each record does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedisCommand {
    /// default
    #[default]
    Rpush,
    Lpush,
    Set,
    Hset,
    Xadd,
    Publish,
}

crate::config::named_enum!(RedisCommand { "rpush" => Rpush, "lpush" => Lpush, "set" => Set, "hset" => Hset, "xadd" => Xadd, "publish" => Publish });

/// `type: redis` output settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisOutputConfig {
    /// `redis://[user:password@]host:port[/db]` (required)
    pub url: String,
    pub command: RedisCommand,
    /// The key (channel for publish); `${key}` = the record's key (required)
    pub key: String,
    /// `set` only: expiry of the stored value; default none
    pub ttl_ms: Option<u64>,
    /// Connect and command timeout; default 5000
    pub timeout_ms: u64,
    /// Retries of a batch whose connection failed; default 5
    pub retry_count: u32,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRedisOutput {
    url: String,
    command: Option<String>,
    key: String,
    ttl_ms: Option<u64>,
    timeout_ms: Option<u64>,
    retry_count: Option<u32>,
}

impl Sink for RedisOutputConfig {
    const NAME: &'static str = "redis";
    type Raw = RawRedisOutput;

    fn from_raw(ctx: &Ctx, raw: RawRedisOutput, at: &YPath) -> Result<Self, ConfigError> {
        use redis::IntoConnectionInfo;
        if let Err(e) = raw.url.as_str().into_connection_info() {
            return Err(ctx.invalid(&at.key("url"), format!("{}: not a Redis URL like redis://127.0.0.1:6379/0 ({e})", at.key("url"))));
        }
        let cfg = RedisOutputConfig {
            url: raw.url,
            command: ctx.named(raw.command, &at.key("command"), "command", RedisCommand::NAMES, RedisCommand::from_name, RedisCommand::default())?,
            key: raw.key,
            ttl_ms: raw.ttl_ms,
            timeout_ms: raw.timeout_ms.unwrap_or(5_000),
            retry_count: raw.retry_count.unwrap_or(5),
        };
        if cfg.key.is_empty() {
            return Err(ctx.invalid(&at.key("key"), format!("{} must not be empty", at.key("key"))));
        }
        if cfg.ttl_ms.is_some() && cfg.command != RedisCommand::Set {
            return Err(ctx.invalid(&at.key("ttl_ms"), format!("{} applies to `command: set` only", at.key("ttl_ms"))));
        }
        ctx.at_least_if_set(&at.key("ttl_ms"), cfg.ttl_ms, 1)?;
        ctx.at_least(&at.key("timeout_ms"), cfg.timeout_ms, 1)?;
        Ok(cfg)
    }

    fn capabilities(&self) -> SinkCaps {
        SinkCaps { at_least_once: !matches!(self.command, RedisCommand::Set | RedisCommand::Hset), ..SinkCaps::default() }
    }

    fn open(&self, _cx: &SinkCx<'_>) -> anyhow::Result<Box<dyn Output>> {
        let client = redis::Client::open(self.url.as_str())?;
        let mut out = RedisOut { cfg: self.clone(), client, con: None };
        out.connection()?;
        Ok(Box::new(out))
    }
}

struct RedisOut {
    cfg: RedisOutputConfig,
    client: redis::Client,
    /// None after a failure: the next attempt connects again.
    con: Option<redis::Connection>,
}

/// Which consecutive records one variadic command writes together.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Merge {
    /// Records of one key (`RPUSH`, `LPUSH`, `HSET`: the command names the key once).
    SameKey,
    /// Records of any keys (`MSET k1 v1 k2 v2`).
    AnyKey,
    /// None: one command per record.
    Never,
}

impl RedisOut {
    fn where_(&self) -> String {
        let info = self.client.get_connection_info();
        format!("redis output {}", info.addr)
    }

    fn connection(&mut self) -> anyhow::Result<&mut redis::Connection> {
        if self.con.is_none() {
            let timeout = Duration::from_millis(self.cfg.timeout_ms);
            let con = self.client.get_connection_with_timeout(timeout).map_err(|e| anyhow::anyhow!("{}: cannot connect: {e}", self.where_()))?;
            con.set_read_timeout(Some(timeout))?;
            con.set_write_timeout(Some(timeout))?;
            self.con = Some(con);
        }
        Ok(self.con.as_mut().expect("connected"))
    }

    /// The Redis key of `r`: `key` with `${key}` replaced by the record's key.
    fn key_of(&self, r: &Record) -> anyhow::Result<Vec<u8>> {
        if !self.cfg.key.contains("${key}") {
            return Ok(self.cfg.key.as_bytes().to_vec());
        }
        Ok(self.cfg.key.replace("${key}", &String::from_utf8_lossy(self.record_key(r)?)).into_bytes())
    }

    fn record_key<'r>(&self, r: &'r Record) -> anyhow::Result<&'r [u8]> {
        r.key.as_deref().ok_or_else(|| {
            anyhow::anyhow!("{}: the record at partition {} offset {} has no key, and `key: {}` needs one", self.where_(), r.partition, r.offset, self.cfg.key)
        })
    }

    /// The batch as one transaction (no `MULTI` when it is one command). Consecutive records
    /// that one variadic command can write together share it, which Redis applies exactly as
    /// the commands one by one: `RPUSH`/`LPUSH` to the same list, `HSET` to the same hash, and
    /// `MSET` for `set` without `ttl_ms` (a later value of a key wins, as it would).
    fn pipeline(&self, records: &[Record]) -> anyhow::Result<redis::Pipeline> {
        let mut p = redis::pipe();
        let mut open: Option<(Vec<u8>, redis::Cmd)> = None;
        let mut commands = 0usize;
        let mut close = |p: &mut redis::Pipeline, cmd: redis::Cmd| {
            p.add_command(cmd).ignore();
            commands += 1;
        };
        for r in records {
            let key = self.key_of(r)?;
            let value = r.value.as_deref().unwrap_or_default();
            let (name, merge) = match self.cfg.command {
                RedisCommand::Rpush => ("RPUSH", Merge::SameKey),
                RedisCommand::Lpush => ("LPUSH", Merge::SameKey),
                RedisCommand::Hset => ("HSET", Merge::SameKey),
                RedisCommand::Set if self.cfg.ttl_ms.is_none() => ("MSET", Merge::AnyKey),
                RedisCommand::Set => ("SET", Merge::Never),
                RedisCommand::Xadd => ("XADD", Merge::Never),
                RedisCommand::Publish => ("PUBLISH", Merge::Never),
            };
            let joins = |k: &[u8]| merge == Merge::AnyKey || (merge == Merge::SameKey && k == key.as_slice());
            let cmd = match open.take() {
                Some((k, cmd)) if joins(&k) => {
                    open = Some((k, cmd));
                    &mut open.as_mut().expect("open").1
                }
                prev => {
                    if let Some((_, done)) = prev {
                        close(&mut p, done);
                    }
                    let mut cmd = redis::cmd(name);
                    if merge != Merge::AnyKey {
                        cmd.arg(&key); // the command's one key; MSET's keys go with their values
                    }
                    open = Some((key.clone(), cmd));
                    &mut open.as_mut().expect("open").1
                }
            };
            match self.cfg.command {
                RedisCommand::Rpush | RedisCommand::Lpush | RedisCommand::Publish => cmd.arg(value),
                RedisCommand::Set => match self.cfg.ttl_ms {
                    Some(ms) => cmd.arg(value).arg("PX").arg(ms),
                    None => cmd.arg(&key).arg(value),
                },
                RedisCommand::Hset => cmd.arg(self.record_key(r)?).arg(value),
                RedisCommand::Xadd => match &r.key {
                    Some(k) => cmd.arg("*").arg("value").arg(value).arg("key").arg(k.as_slice()),
                    None => cmd.arg("*").arg("value").arg(value),
                },
            };
            if merge == Merge::Never {
                let (_, done) = open.take().expect("open");
                close(&mut p, done);
            }
        }
        if let Some((_, done)) = open {
            close(&mut p, done);
        }
        if commands > 1 {
            p.atomic();
        }
        Ok(p)
    }
}

impl Output for RedisOut {
    fn write_batch(&mut self, records: &[Record]) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let pipeline = self.pipeline(records)?;
        let mut attempt = 0u32;
        loop {
            let result = self.connection().and_then(|con| pipeline.query::<()>(con).map_err(anyhow::Error::from));
            let e = match result {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let transient = e
                .downcast_ref::<redis::RedisError>()
                .is_none_or(|r| r.is_io_error() || r.is_timeout() || r.is_connection_dropped() || r.is_connection_refusal());
            if !transient || attempt >= self.cfg.retry_count {
                anyhow::bail!("{}: writing {} record(s) to `{}` failed after {} attempt(s): {e:#}", self.where_(), records.len(), self.cfg.key, attempt + 1);
            }
            tracing::warn!(attempt = attempt + 1, "{}: {e:#}; retrying on a new connection", self.where_());
            self.con = None;
            std::thread::sleep(Duration::from_millis(100u64 << attempt.min(6)).min(Duration::from_secs(5)));
            attempt += 1;
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commands `records` become under `command` and `key`, each as its words.
    fn commands(command: RedisCommand, key: &str, ttl_ms: Option<u64>, records: &[(&str, &str)]) -> Vec<String> {
        let cfg = RedisOutputConfig { url: "redis://127.0.0.1:1".into(), command, key: key.into(), ttl_ms, timeout_ms: 1, retry_count: 0 };
        let out = RedisOut { client: redis::Client::open(cfg.url.as_str()).unwrap(), cfg, con: None };
        let records: Vec<Record> =
            records.iter().map(|(k, v)| Record { key: Some(k.as_bytes().to_vec()), value: Some(v.as_bytes().to_vec()), ..Default::default() }).collect();
        let p = out.pipeline(&records).unwrap();
        p.cmd_iter()
            .map(|c| {
                c.args_iter()
                    .map(|a| match a {
                        redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                        redis::Arg::Cursor => "<cursor>".into(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn consecutive_records_of_one_key_share_a_variadic_command() {
        let recs = [("a", "1"), ("a", "2"), ("b", "3"), ("a", "4")];
        assert_eq!(commands(RedisCommand::Rpush, "l", None, &recs), ["RPUSH l 1 2 3 4"]);
        assert_eq!(commands(RedisCommand::Lpush, "l:${key}", None, &recs), ["LPUSH l:a 1 2", "LPUSH l:b 3", "LPUSH l:a 4"]);
        assert_eq!(commands(RedisCommand::Hset, "h", None, &recs), ["HSET h a 1 a 2 b 3 a 4"]);
        assert_eq!(commands(RedisCommand::Set, "s:${key}", None, &recs), ["MSET s:a 1 s:a 2 s:b 3 s:a 4"]);
        assert_eq!(commands(RedisCommand::Set, "s:${key}", Some(5), &recs[..2]), ["SET s:a 1 PX 5", "SET s:a 2 PX 5"]);
        assert_eq!(commands(RedisCommand::Publish, "c", None, &recs[..2]), ["PUBLISH c 1", "PUBLISH c 2"]);
        assert_eq!(commands(RedisCommand::Xadd, "x", None, &recs[..1]), ["XADD x * value 1 key a"]);
    }
}
