//! What the engine knows of a configured input, output or processor, whatever its type.
//!
//! Contract: each connector type lives in one file under `crate::connectors` and parses its own
//! section into a value implementing [`SourceSpec`] or [`SinkSpec`] (see
//! `connectors::registry`); each processor type likewise under `crate::processor`
//! ([`ProcessorSpec`], `processor::registry`). The config holds that value as an
//! [`InputConfig`] / [`OutputConfig`] / [`ProcessorConfig`]; the engine asks it questions through
//! the capability records ([`SourceCaps`], [`SinkCaps`], [`ProcessorCaps`]) instead of matching on
//! types, and only the type's own code (and the engine, for a plugin's limits) downcasts it
//! ([`InputConfig::get`]). The loader receives the registries' tables from its caller
//! ([`Tables`]), so this layer never names a connector or a processor.

use std::any::Any;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use super::dispatch::Entry;

/// Equality and downcasting of connector settings held behind a trait object.
pub trait DynEq: Any {
    fn as_any(&self) -> &dyn Any;
    fn dyn_eq(&self, other: &dyn Any) -> bool;
}

impl<T: PartialEq + Any> DynEq for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn dyn_eq(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<T>() == Some(self)
    }
}

/// The parsed settings of one input type.
pub trait SourceSpec: fmt::Debug + Send + Sync + DynEq {
    /// The `type:` name.
    fn type_name(&self) -> &'static str;
    fn caps(&self) -> SourceCaps;
}

/// The parsed settings of one output type.
pub trait SinkSpec: fmt::Debug + Send + Sync + DynEq {
    fn type_name(&self) -> &'static str;
    fn caps(&self) -> SinkCaps;
}

/// The parsed settings of one processor type (`processor::registry`).
pub trait ProcessorSpec: fmt::Debug + Send + Sync + DynEq {
    fn type_name(&self) -> &'static str;
    fn caps(&self) -> ProcessorCaps;
}

/// What a processor does to the stream around it, as the loader and the engine need to know it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessorCaps {
    /// It may change a record's key or key fields (a plugin, a batch query): a keyed stage after
    /// it cannot rely on the routing done as the input read the record.
    pub may_rewrite_key: bool,
    /// Its failed batches go to the stream's `error_output:` (`on_failure: error_output`), so the
    /// stream must have one.
    pub needs_error_output: bool,
}

/// What an input can do, as the engine needs to know it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceCaps {
    /// It can seek back to a checkpointed position (exactly-once needs it: stdin cannot).
    pub replayable: bool,
    /// The JSON value field the input makes each record's key: routing by that field can hash
    /// the record key as it is.
    pub key_field: Option<String>,
    /// Records come in partitions whose order the engine keeps when no stage needs a key (Kafka).
    pub partitioned: bool,
    /// Several processes share its partitions through a consumer group (group mode).
    pub group_assignment: bool,
    /// It commits offsets to a consumer group (a Kafka transaction can carry them); the group
    /// is `consumer_group` or the stream's default.
    pub group_offsets: bool,
    /// The consumer group named in its settings.
    pub consumer_group: Option<String>,
    /// Each key of these JSON value fields (in order) lives in one partition: the producer keyed
    /// the messages by them (a repartition topic, or a kafka input's `partitioned_by:`). Empty:
    /// by the record key. None: unknown.
    pub partitioned_by: Option<Vec<String>>,
    /// It reads records as whole JSON lines with no key (`Input::next_lines`): a stream of
    /// stateless stages that take blocks runs them on it (the columnar lane).
    pub lines: bool,
}

/// What an output can do, as the engine needs to know it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkCaps {
    /// The local file it writes: two outputs never share one, and group mode refuses it (every
    /// process would write the same file).
    pub file: Option<PathBuf>,
    /// Its exactly-once form is decided by the checkpoints: it needs `state_management.enabled`
    /// and `exactly_once`.
    pub needs_checkpoints: bool,
    /// It repeats what it wrote since the last checkpoint after a crash, even with
    /// `state_management.exactly_once` (warned about at start).
    pub at_least_once: bool,
    /// It decides each epoch itself (Kafka transactions): the checkpoint coordinator asks it.
    pub decides: bool,
    /// Its exactly-once output becomes visible in phase two of the commit protocol (a committer
    /// run after the decision: the s3 output's markers). Group mode refuses it: the next owner of
    /// a dead session's key groups does not run that session's last commit (only an outbox's).
    pub commits_after_decision: bool,
}

macro_rules! spec_holder {
    ($(#[$doc:meta])* $name:ident, $spec:ident, $caps:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(Arc<dyn $spec>);

        impl $name {
            pub fn new(spec: impl $spec) -> Self {
                $name(Arc::new(spec))
            }
            /// The `type:` name.
            pub fn type_name(&self) -> &'static str {
                self.0.type_name()
            }
            pub fn caps(&self) -> $caps {
                self.0.caps()
            }
            /// The settings as their connector's own type (None when it is another type).
            pub fn get<T: 'static>(&self) -> Option<&T> {
                (*self.0).as_any().downcast_ref::<T>()
            }
            /// The settings as a trait object (for the registry's builders).
            pub fn spec(&self) -> &dyn $spec {
                &*self.0
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                (*self.0).dyn_eq((*other.0).as_any())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
    };
}

spec_holder!(
    /// A stream's `input:` section, parsed by its connector.
    InputConfig,
    SourceSpec,
    SourceCaps
);
spec_holder!(
    /// An `output:`, `error_output:` or named output section, parsed by its connector.
    OutputConfig,
    SinkSpec,
    SinkCaps
);
spec_holder!(
    /// One `pipeline.processors` entry, parsed by its processor type.
    ProcessorConfig,
    ProcessorSpec,
    ProcessorCaps
);

/// The connector and processor types the loader knows, in documentation order (from
/// `crate::registry`).
#[derive(Clone)]
pub(crate) struct Tables {
    pub inputs: Vec<&'static Entry<InputConfig>>,
    pub outputs: Vec<&'static Entry<OutputConfig>>,
    pub processors: Vec<&'static Entry<ProcessorConfig>>,
    /// The stage an input's `codec:` stands for (placed first in the pipeline), and an
    /// output's (placed last): the `codec:` mapping is that stage's settings.
    pub codecs: Option<Codecs>,
}

/// The processor types behind `codec:` on inputs and outputs.
#[derive(Clone, Copy)]
pub(crate) struct Codecs {
    pub decode: &'static Entry<ProcessorConfig>,
    pub encode: &'static Entry<ProcessorConfig>,
}
