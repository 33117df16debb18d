// Errors of the ArkFlow JavaScript SDK: `PluginError` (the WIT `error`; its `payload` is what
// componentize-js returns as `err`), its constructors by class, and `stateCall`, which turns a
// `state-error` an import threw into a PluginError of class `state` whose code is the case's WIT
// name and whose message reads like the Rust SDK's (`StateError::QuotaExceeded("...")`).

/** An `error` of the WIT: throw it to fail a call, or pass it to fail() for one record. */
export class PluginError extends Error {
  constructor(cls, code, message) {
    super(`${cls} [${code}]: ${message}`);
    this.payload = { class: cls, code, message }; // what componentize-js returns as `err`
  }
  get class() { return this.payload.class; }
  get code() { return this.payload.code; }
}

export const invalidInput = (code, message) => new PluginError('invalid-input', code, message);
export const configError = (code, message) => new PluginError('config', code, message);
export const stateError = (code, message) => new PluginError('state', code, message);
export const retriable = (code, message) => new PluginError('retriable', code, message);
export const internal = (code, message) => new PluginError('internal', code, message);

const camel = (tag) => tag.replace(/(^|-)([a-z])/g, (_, __, c) => c.toUpperCase());

/** `{:?}` of a Rust string, for messages identical to the Rust SDK's. */
function rustDebugString(s) {
  let out = '"';
  for (const c of s) {
    const n = c.codePointAt(0);
    if (c === '"' || c === '\\') out += `\\${c}`;
    else if (c === '\n') out += '\\n';
    else if (c === '\r') out += '\\r';
    else if (c === '\t') out += '\\t';
    else if (c === '\0') out += '\\0';
    else if (n < 0x20 || n === 0x7f) out += `\\u{${n.toString(16)}}`;
    else out += c;
  }
  return `${out}"`;
}

/** A `state-error` case (`{ tag, val }`) as a PluginError of class `state`. */
export function fromStateError(v) {
  const name = `StateError::${camel(v.tag)}`;
  const message = v.val === undefined ? name
    : `${name}(${typeof v.val === 'string' ? rustDebugString(v.val) : String(v.val)})`;
  return stateError(v.tag, message);
}

export function stateCall(f) {
  try {
    return f();
  } catch (e) {
    const v = e && e.payload; // componentize-js throws an import's `err` with the error as payload
    if (v && typeof v.tag === 'string') throw fromStateError(v);
    throw e;
  }
}

