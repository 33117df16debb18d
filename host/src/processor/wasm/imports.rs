//! The WIT import traits (`state`, `timers`, `log`, `metrics`; 0.2.0's `fields` too) of both ABIs, implemented on
//! [`HostCtx`]. The two packages' traits differ only in their module path (0.2.0 adds the column
//! calls of `store`), so one macro writes both from the same bodies, which delegate to `HostCtx`.

use super::columns::{Cols, ColumnBuf};
use super::fields::Declared;
use super::obs::Op;
use super::resource::StoreRes;
use super::HostCtx;
use crate::state::StateError;
use wasmtime::component::Resource;

macro_rules! imports {
    ($p:ident { $($extra:item)* }) => {
        fn to_wit(e: StateError) -> $p::state::StateError {
            use $p::state::StateError as W;
            match e {
                StateError::UnknownStore(s) => W::UnknownStore(s),
                StateError::NoScope => W::NoScope,
                StateError::KeyTooLarge(n) => W::KeyTooLarge(n),
                StateError::ValueTooLarge(n) => W::ValueTooLarge(n),
                StateError::QuotaExceeded(s) => W::QuotaExceeded(s),
                StateError::NotACounter => W::NotACounter,
                StateError::Disabled => W::Disabled,
                // The WIT documents overflow under quota-exceeded (it has no case of its own).
                e @ StateError::Overflow(..) => W::QuotaExceeded(e.to_string()),
            }
        }

        fn domain_byte(d: $p::types::TimeDomain) -> u8 {
            match d {
                $p::types::TimeDomain::Event => b'e',
                $p::types::TimeDomain::Processing => b'p',
            }
        }

        impl $p::types::Host for HostCtx {}

        impl $p::state::Host for HostCtx {}

        impl $p::state::HostStore for HostCtx {
            fn open(&mut self, name: String) -> Result<Resource<StoreRes>, $p::state::StateError> {
                self.open_store(name).map_err(to_wit)
            }

            fn get(&mut self, store: Resource<StoreRes>, key: Vec<u8>) -> Result<Option<Vec<u8>>, $p::state::StateError> {
                self.with_scope(&store, |s, id| Ok(s.get(id, &key)?.map(<[u8]>::to_vec))).map_err(to_wit)
            }

            fn put(&mut self, store: Resource<StoreRes>, key: Vec<u8>, value: Vec<u8>) -> Result<(), $p::state::StateError> {
                self.with_scope(&store, |s, id| s.put(id, key, value)).map_err(to_wit)
            }

            fn delete(&mut self, store: Resource<StoreRes>, key: Vec<u8>) -> Result<bool, $p::state::StateError> {
                self.with_scope(&store, |s, id| s.delete(id, key)).map_err(to_wit)
            }

            fn get_many(&mut self, store: Resource<StoreRes>, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>, $p::state::StateError> {
                self.with_scope(&store, |s, id| keys.iter().map(|k| Ok(s.get(id, k)?.map(<[u8]>::to_vec))).collect()).map_err(to_wit)
            }

            fn put_many(&mut self, store: Resource<StoreRes>, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), $p::state::StateError> {
                self.with_scope(&store, |s, id| entries.into_iter().try_for_each(|(k, v)| s.put(id, k, v))).map_err(to_wit)
            }

            fn delete_many(&mut self, store: Resource<StoreRes>, keys: Vec<Vec<u8>>) -> Result<(), $p::state::StateError> {
                self.with_scope(&store, |s, id| keys.into_iter().try_for_each(|k| s.delete(id, k).map(|_| ()))).map_err(to_wit)
            }

            fn increment(&mut self, store: Resource<StoreRes>, key: Vec<u8>, delta: i64) -> Result<i64, $p::state::StateError> {
                self.with_scope(&store, |s, id| s.increment(id, key, delta)).map_err(to_wit)
            }

            fn scan_prefix(
                &mut self,
                store: Resource<StoreRes>,
                prefix: Vec<u8>,
                start_after: Option<Vec<u8>>,
                limit: u32,
            ) -> Result<$p::state::ScanPage, $p::state::StateError> {
                self.with_scope(&store, |s, id| {
                    let p = s.scan_prefix(id, &prefix, start_after.as_deref(), limit)?;
                    Ok($p::state::ScanPage { entries: p.entries, next: p.next })
                })
                .map_err(to_wit)
            }

            fn drop(&mut self, _store: Resource<StoreRes>) -> wasmtime::Result<()> {
                Ok(())
            }

            $($extra)*
        }

        impl $p::timers::Host for HostCtx {
            fn register_timer(&mut self, key: Vec<u8>, time_ms: i64, domain: $p::types::TimeDomain) -> Result<(), $p::state::StateError> {
                self.register_timer(&key, time_ms, domain_byte(domain)).map_err(to_wit)
            }

            fn delete_timer(&mut self, key: Vec<u8>, time_ms: i64, domain: $p::types::TimeDomain) -> Result<bool, $p::state::StateError> {
                self.delete_timer(&key, time_ms, domain_byte(domain)).map_err(to_wit)
            }

            fn watermark(&mut self) -> i64 {
                self.watermark
            }

            fn now(&mut self) -> i64 {
                crate::util::time::now_ms()
            }
        }

        impl $p::log::Host for HostCtx {
            fn log(&mut self, level: $p::log::Level, message: String) {
                use $p::log::Level as L;
                let level = match level {
                    L::Trace => tracing::Level::TRACE,
                    L::Debug => tracing::Level::DEBUG,
                    L::Info => tracing::Level::INFO,
                    L::Warn => tracing::Level::WARN,
                    L::Error => tracing::Level::ERROR,
                };
                self.log_line(level, message)
            }
        }

        impl $p::metrics::Host for HostCtx {
            fn counter_add(&mut self, name: String, delta: u64) {
                self.metric(name, Op::Add(delta));
            }
            fn gauge_set(&mut self, name: String, value: f64) {
                self.metric(name, Op::Set(value));
            }
            fn histogram_record(&mut self, name: String, value: f64) {
                self.metric(name, Op::Observe(value));
            }
        }
    };
}

mod v01 {
    use super::*;
    use crate::processor::wasm::bindings::v01::arkflow::plugin as p;
    imports!(p {});
}

mod v02 {
    use super::*;
    use crate::processor::wasm::bindings::v02::arkflow::plugin as p;
    use p::types::ColumnResult as Column;

    imports!(p {
        fn get_column(&mut self, store: Resource<StoreRes>, keys: Column) -> wasmtime::Result<Result<Column, p::state::StateError>> {
            let k = Cols::of(&keys, "store.get-column keys").map_err(wasmtime::Error::msg)?;
            let got = self.with_scope(&store, |s, id| {
                let mut out = ColumnBuf::default();
                out.ends.reserve(k.len());
                for i in 0..k.len() {
                    out.push(s.get(id, k.bytes(i))?);
                }
                Ok(out)
            });
            Ok(got.map(ColumnBuf::into_column).map_err(to_wit))
        }

        fn put_column(&mut self, store: Resource<StoreRes>, keys: Column, values: Column) -> wasmtime::Result<Result<(), p::state::StateError>> {
            let k = Cols::of(&keys, "store.put-column keys").map_err(wasmtime::Error::msg)?;
            let v = Cols::of(&values, "store.put-column values").map_err(wasmtime::Error::msg)?;
            if k.len() != v.len() {
                wasmtime::bail!("store.put-column: {} keys but {} values", k.len(), v.len());
            }
            Ok(self.with_scope(&store, |s, id| (0..k.len()).try_for_each(|i| s.put(id, k.bytes(i).to_vec(), v.bytes(i).to_vec()))).map_err(to_wit))
        }
    });

    impl p::fields::Host for HostCtx {
        fn declare(&mut self, fields: Vec<p::fields::Field>) -> Result<(), String> {
            self.declared = Declared::new(fields)?;
            // The running call's columns were decoded for the old declaration.
            self.decoded = None;
            Ok(())
        }

        fn columns(&mut self) -> Result<p::fields::Decoded, String> {
            match &self.decoded {
                Some(d) => Ok(d.clone()),
                None if self.declared.is_empty() => Err("fields.columns: no fields are declared (call fields.declare in init)".into()),
                None => {
                    Err("fields.columns: called outside process-batch, or after fields.declare in the same call (a declaration applies from the next batch)"
                        .into())
                }
            }
        }
    }
}
