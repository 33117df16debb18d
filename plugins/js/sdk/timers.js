// Timers for plugins of the world `timed-plugin` (arkflow:plugin/timers and timer-handler): import
// this module only from such a plugin (plugins/js/build.sh builds an app.js that exports
// `timerHandler` for that world). Semantics: docs/plugins/rust.md#timers.
//
//   import * as ak from '../sdk/arkflow.js';
//   import * as timers from '../sdk/timers.js';
//   export const processor = ak.exportProcessor({ ..., init(config) { return {
//     processBatch(ctx, records) { timers.registerTimer(key, t, 'event'); ... },
//     onTimers(ctx, fired) { return fired.map((t) => ...); },  // one outcome per timer (or an Outcomes)
//   }; } });
//   export const timerHandler = timers.timerHandler(processor);
//
// Times are Numbers or BigInts going in; `watermark()` and `now()` return Numbers; read record and
// timer times with `signed(...)`.
import { registerTimer as rawRegister, deleteTimer as rawDelete, watermark as rawWatermark, now as rawNow } from 'arkflow:plugin/timers@0.2.0';
import { stateCall, stateError } from './arkflow.js';

export const EVENT = 'event';
export const PROCESSING = 'processing';

// componentize-js handles s64 as if it were u64: lifted results come back unsigned (see `signed`),
// and lowering a negative time traps the instance whatever its JS type. Until that is fixed, a
// negative time (before 1970) is refused here with an error the plugin can handle.
const bits = (timeMs) => {
  const t = BigInt(timeMs);
  if (t < 0n) throw stateError('negative-time', `timer time ${t} is before the Unix epoch: the JavaScript bindings cannot pass negative s64 values`);
  return t;
};

/** Registers a timer for `key` at `timeMs` on the `domain` clock, staged with the call. */
export const registerTimer = (key, timeMs, domain = EVENT) => stateCall(() => rawRegister(key, bits(timeMs), domain));
/** Deletes a timer; returns whether it was registered. */
export const deleteTimer = (key, timeMs, domain = EVENT) => stateCall(() => rawDelete(key, bits(timeMs), domain));
/** The stream's watermark as this instance last saw it (-2^63 before the first). */
/** An s64 the bindings handed over, as a Number. componentize-js lifts s64 values as if they were
 *  unsigned (i64::MIN came back as 2^63, a record time of -5 as 2^64 - 5): read every time
 *  (`record.timestampMs`, `timer.timeMs`) through this. */
export const signed = (v) => Number(BigInt.asIntN(64, BigInt(v)));
export const watermark = () => signed(rawWatermark());
/** The host's wall clock, ms since the Unix epoch (the processing-time clock). */
export const now = () => signed(rawNow());

/** The `timer-handler` export of a processor made by `exportProcessor`. */
export const timerHandler = (processor) => ({ onTimers: (ctx, fired) => processor.onTimers(ctx, fired) });
