// JSON for record values, with the Rust SDK's semantics (plugins/sdk/src/json.rs): a document is
// valid when it is UTF-8 RFC 8259 JSON nesting at most JSON_MAX_DEPTH objects/arrays, with no lone
// surrogate escapes; invalid JSON is invalid-input `bad-json` with the message
// `invalid JSON at byte N: reason`. Valid documents take the engine's JSON.parse (plus a walk for
// depth and lone surrogates); only an invalid one is re-read by json-locate.js, a port of the Rust
// parser, for the exact message.
import { invalidInput } from './errors.js';
import { locateJsonError } from './json-locate.js';

export const JSON_MAX_DEPTH = 128;

/** Map key for bytes: one char per byte (also the text of a plain ASCII key). */
export function bytesKey(b) {
  if (b.length <= 4096) return String.fromCharCode.apply(null, b);
  let s = '';
  for (let i = 0; i < b.length; i += 4096) s += String.fromCharCode.apply(null, b.subarray(i, i + 4096));
  return s;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }); // a BOM is not JSON whitespace
const lossy = new TextDecoder('utf-8', { ignoreBOM: true });
const encoder = new TextEncoder();
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
const NEEDS_ESCAPE = /[^\x20\x21\x23-\x5b\x5d-\x7e]/; // on bytesKey text: a byte a JSON string cannot keep as is

function check(v, depth) {
  if (typeof v === 'string') {
    if (LONE_SURROGATE.test(v)) throw new SyntaxError('lone surrogate');
  } else if (v !== null && typeof v === 'object') {
    if (depth >= JSON_MAX_DEPTH) throw new SyntaxError('nesting too deep');
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) check(v[i], depth + 1);
    } else {
      const keys = Object.keys(v);
      for (let i = 0; i < keys.length; i++) {
        check(keys[i], depth + 1);
        check(v[keys[i]], depth + 1);
      }
    }
  }
}

/** [text, parsed value] of `doc`, or throws bad-json. */
function parse(doc) {
  try {
    const text = utf8.decode(doc);
    const v = JSON.parse(text);
    check(v, 0);
    return [text, v];
  } catch (e) {
    const at = locateJsonError(doc);
    throw invalidInput('bad-json', at ? `invalid JSON at byte ${at[0]}: ${at[1]}` : `invalid JSON: ${e.message}`);
  }
}

const isWs = (c) => c === ' ' || c === '\t' || c === '\n' || c === '\r';

/** End (exclusive) of the value starting at `i` of the valid document `s`. */
function skipValue(s, i) {
  const c = s[i];
  if (c === '"') {
    for (i++; s[i] !== '"'; i++) if (s[i] === '\\') i++;
    return i + 1;
  }
  if (c === '{' || c === '[') {
    for (let depth = 0; ; i++) {
      const d = s[i];
      if (d === '"') i = skipValue(s, i) - 1;
      else if (d === '{' || d === '[') depth++;
      else if ((d === '}' || d === ']') && --depth === 0) return i + 1;
    }
  }
  while (i < s.length && s[i] !== ',' && s[i] !== '}' && s[i] !== ']' && !isWs(s[i])) i++;
  return i;
}

function skipWs(s, i) {
  while (isWs(s[i])) i++;
  return i;
}

/** Raw text of the first top-level member `name` of the valid object document `s`. */
function firstMember(s, name) {
  let i = skipWs(s, 0) + 1; // past '{'
  for (;;) {
    i = skipWs(s, i);
    if (s[i] !== '"') return undefined;
    const end = skipValue(s, i);
    const member = JSON.parse(s.slice(i, end));
    const start = skipWs(s, skipWs(s, end) + 1); // past ':'
    const valueEnd = skipValue(s, start);
    if (member === name) return s.slice(start, valueEnd);
    i = skipWs(s, valueEnd) + 1; // past ','
  }
}

/** Throws invalid-input `bad-json` unless `doc` (Uint8Array) is one valid JSON document. */
export function validateJson(doc) {
  parse(doc);
}

/** The top-level member `name` of `doc` when it is a string (its contents) or a number (its text
 * as written); undefined when absent, of another type, or the document is not an object. With
 * duplicate names the first wins. Throws bad-json. */
export function jsonKey(doc, name) {
  const [text, v] = parse(doc);
  if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.hasOwn(v, name)) return undefined;
  const raw = firstMember(text, name);
  if (raw[0] === '"') return JSON.parse(raw);
  if (raw[0] === '-' || (raw[0] >= '0' && raw[0] <= '9')) return raw;
  return undefined;
}

/** The body of a JSON string literal for bytes `b` (UTF-8, invalid sequences replaced by U+FFFD
 * as Rust's from_utf8_lossy does), escaped as the Rust SDK escapes. */
export function escapeJson(b) {
  const s = bytesKey(b);
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(lossy.decode(b)).slice(1, -1) : s;
}
