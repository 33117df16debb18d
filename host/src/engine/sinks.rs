//! A stream's sinks as one set: the main `output`, `error_output` and the named `outputs`.
//!
//! Contract: every sink has an id (`output`, `error_output`, `outputs.<name>`) that names it in
//! error messages, in manifests (its commit blobs) and, for an outbox sink, in the store (the main
//! output's outbox is the checkpoint scope itself, any other's is `{scope}/{id}`). A named output
//! is built exactly like the main output and gets the same guarantee in the same form: with
//! `state_management.exactly_once` a file writes per-epoch parts and a kafka output with
//! `exactly_once: true` publishes through the outbox (Kafka transactions carry the main output
//! only). Phase one of the commit protocol runs on every sink at one aligned barrier, and the
//! blobs are reported to the coordinator together, so one decision covers all of them.

use crate::config::{EngineConfig, OutputConfig, StreamConfig};
use crate::connectors::output::Output;
use crate::connectors::registry::{open_output, SinkCx};

pub(crate) struct Sinks {
    pub output: Box<dyn Output>,
    pub errors: Option<Box<dyn Output>>,
    /// (id `outputs.<name>`, output), in the order of `StreamConfig::outputs`.
    pub named: Vec<(String, Box<dyn Output>)>,
}

/// The id of the named output `name`.
pub(crate) fn named_id(name: &str) -> String {
    format!("outputs.{name}")
}

impl Sinks {
    /// The sinks of a stream that does not checkpoint (at-least-once, appending).
    pub fn plain(cfg: &StreamConfig) -> anyhow::Result<Sinks> {
        let open = |id: &str, o: &OutputConfig| open_output(o, &SinkCx { stream: &cfg.name, sink: id, exactly_once: false, place: None });
        Self::assemble(cfg, open("output", &cfg.output), open)
    }

    /// The sinks of a checkpointing stream, each opened at `at` (in its exactly-once form where
    /// it has one, with `state_management.exactly_once`); `output` is the main output when the
    /// caller built it (a deciding sink: Kafka transactions).
    pub fn checkpointed(engine: &EngineConfig, cfg: &StreamConfig, at: &super::SinkPlace<'_>, output: Option<Box<dyn Output>>) -> anyhow::Result<Sinks> {
        let exactly_once = engine.state_management.exactly_once;
        let open = |id: &str, o: &OutputConfig| open_output(o, &SinkCx { stream: &cfg.name, sink: id, exactly_once, place: Some(at) });
        let main = match output {
            Some(o) => Ok(o),
            None => open("output", &cfg.output),
        };
        Self::assemble(cfg, main, open)
    }

    fn assemble(
        cfg: &StreamConfig,
        main: anyhow::Result<Box<dyn Output>>,
        build: impl Fn(&str, &OutputConfig) -> anyhow::Result<Box<dyn Output>>,
    ) -> anyhow::Result<Sinks> {
        let name = &cfg.name;
        let output = main.map_err(|e| anyhow::anyhow!("stream {name}: output: {e:#}"))?;
        let errors = match &cfg.error_output {
            Some(o) => Some(build("error_output", o).map_err(|e| anyhow::anyhow!("stream {name}: error_output: {e:#}"))?),
            None => None,
        };
        let mut named = Vec::with_capacity(cfg.outputs.len());
        for (n, o) in &cfg.outputs {
            let id = named_id(n);
            let out = build(&id, o).map_err(|e| anyhow::anyhow!("stream {name}: {id}: {e:#}"))?;
            named.push((id, out));
        }
        Ok(Sinks { output, errors, named })
    }

    /// Runs `f` on every sink with its id, stopping at the first error (which names the sink).
    pub fn try_each(&mut self, mut f: impl FnMut(&str, &mut dyn Output) -> anyhow::Result<()>) -> anyhow::Result<()> {
        f("output", &mut *self.output)?;
        if let Some(e) = self.errors.as_mut() {
            f("error_output", &mut **e).map_err(|e| e.context("error_output"))?;
        }
        for (id, o) in &mut self.named {
            f(id, &mut **o).map_err(|e| e.context(id.clone()))?;
        }
        Ok(())
    }

    /// Phase two of the commit protocol, by sink id.
    pub fn committers(&self) -> crate::checkpoint::Committers {
        let mut c = crate::checkpoint::Committers::new();
        c.extend(self.output.committer().map(|x| ("output".to_string(), x)));
        c.extend(self.errors.as_ref().and_then(|e| e.committer()).map(|x| ("error_output".to_string(), x)));
        c.extend(self.named.iter().filter_map(|(id, o)| o.committer().map(|x| (id.clone(), x))));
        c
    }

    /// Tells every sink that recovery is done (they clean up and refuse foreign output).
    pub fn recovered(&mut self, stream: &str, last_decided: Option<u64>) -> anyhow::Result<()> {
        self.try_each(|_, o| o.recovered(last_decided)).map_err(|e| anyhow::anyhow!("stream {stream}: {e:#}"))
    }

    /// Phase one of the commit protocol on every sink at barrier `epoch`.
    pub fn pre_commit(&mut self, epoch: u64) -> anyhow::Result<Vec<crate::checkpoint::SinkCommit>> {
        let mut commits = Vec::new();
        self.try_each(|id, o| {
            if let Some(blob) = o.pre_commit(epoch)? {
                commits.push(crate::checkpoint::SinkCommit { sink: id.to_string(), epoch, blob });
            }
            Ok(())
        })?;
        Ok(commits)
    }

    /// Writes records a processor sent to named outputs (`side`: index into `named`).
    pub fn write_side(&mut self, epoch: u64, side: Vec<(u16, crate::record::Record)>) -> anyhow::Result<()> {
        let mut per: Vec<Vec<crate::record::Record>> = (0..self.named.len()).map(|_| Vec::new()).collect();
        for (i, r) in side {
            // Indexes come from the stream's own output list; anything else is a host bug.
            let Some(bucket) = per.get_mut(usize::from(i)) else { anyhow::bail!("a record was routed to named output #{i}, which this stream does not have") };
            bucket.push(r);
        }
        for ((id, o), records) in self.named.iter_mut().zip(per) {
            if !records.is_empty() {
                o.write_epoch(epoch, &records).map_err(|e| e.context(id.clone()))?;
            }
        }
        Ok(())
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.try_each(|_, o| o.flush())
    }

    pub fn close(&mut self) -> anyhow::Result<()> {
        self.try_each(|_, o| o.close())
    }
}

/// The sinks of a stream's config with their ids: main, error, named.
pub(crate) fn configured(cfg: &StreamConfig) -> Vec<(String, &OutputConfig)> {
    let mut v = vec![("output".to_string(), &cfg.output)];
    v.extend(cfg.error_output.as_ref().map(|o| ("error_output".to_string(), o)));
    v.extend(cfg.outputs.iter().map(|(n, o)| (named_id(n), o)));
    v
}
