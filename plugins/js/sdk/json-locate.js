// The Rust SDK's JSON parser (plugins/sdk/src/json.rs), ported to find where and why a document
// is invalid: locateJsonError(bytes) -> [byte offset, reason] of the first error it reports, or
// undefined when it accepts the document. Only called for documents JSON.parse rejected, so its
// speed does not matter.
const MAX_DEPTH = 128;

/** Where Rust's str::from_utf8 stops (`valid_up_to`), or -1 when `b` is all valid UTF-8. */
function utf8ValidUpTo(b) {
  let i = 0;
  const cont = (j, lo = 0x80, hi = 0xbf) => j < b.length && b[j] >= lo && b[j] <= hi;
  while (i < b.length) {
    const c = b[i];
    let n;
    if (c < 0x80) n = 1;
    else if (c >= 0xc2 && c <= 0xdf) n = cont(i + 1) ? 2 : 0;
    else if (c >= 0xe0 && c <= 0xef) {
      const lo = c === 0xe0 ? 0xa0 : 0x80;
      const hi = c === 0xed ? 0x9f : 0xbf;
      n = cont(i + 1, lo, hi) && cont(i + 2) ? 3 : 0;
    } else if (c >= 0xf0 && c <= 0xf4) {
      const lo = c === 0xf0 ? 0x90 : 0x80;
      const hi = c === 0xf4 ? 0x8f : 0xbf;
      n = cont(i + 1, lo, hi) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    } else n = 0;
    if (n === 0) return i;
    i += n;
  }
  return -1;
}

class Bad {
  constructor(pos, reason) {
    this.pos = pos;
    this.reason = reason;
  }
}

const HEX = /^[0-9a-fA-F]{4}$/;

class Parser {
  constructor(b) {
    this.b = b;
    this.pos = 0;
    this.depth = 0;
  }
  peek() { return this.pos < this.b.length ? this.b[this.pos] : undefined; }
  ws() { while ([0x20, 0x09, 0x0a, 0x0d].includes(this.peek())) this.pos++; }
  expect(c, reason) {
    if (this.peek() !== c) throw new Bad(this.pos, reason);
    this.pos++;
  }
  startsWith(word) {
    for (let i = 0; i < word.length; i++) if (this.b[this.pos + i] !== word.charCodeAt(i)) return false;
    return true;
  }
  enter() {
    this.depth++;
    if (this.depth > MAX_DEPTH) throw new Bad(this.pos, 'nesting too deep');
  }
  value() {
    this.ws();
    const c = this.peek();
    if (c === undefined) throw new Bad(this.pos, 'unexpected end of input');
    if (c === 0x22) this.string();
    else if (c === 0x7b) this.object();
    else if (c === 0x5b) this.array();
    else if (c === 0x74 || c === 0x66 || c === 0x6e) {
      const word = c === 0x74 ? 'true' : c === 0x66 ? 'false' : 'null';
      if (!this.startsWith(word)) throw new Bad(this.pos, 'invalid literal');
      this.pos += word.length;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) this.number();
    else throw new Bad(this.pos, 'unexpected character');
  }
  object() {
    this.enter();
    this.expect(0x7b, "expected '{'");
    this.ws();
    if (this.peek() === 0x7d) {
      this.pos++;
      this.depth--;
      return;
    }
    for (;;) {
      this.ws();
      if (this.peek() !== 0x22) throw new Bad(this.pos, 'expected a member name');
      this.string();
      this.ws();
      this.expect(0x3a, "expected ':'");
      this.value();
      this.ws();
      const c = this.peek();
      if (c === 0x2c) this.pos++;
      else if (c === 0x7d) {
        this.pos++;
        break;
      } else throw new Bad(this.pos, "expected ',' or '}'");
    }
    this.depth--;
  }
  array() {
    this.enter();
    this.expect(0x5b, "expected '['");
    this.ws();
    if (this.peek() === 0x5d) {
      this.pos++;
      this.depth--;
      return;
    }
    for (;;) {
      this.value();
      this.ws();
      const c = this.peek();
      if (c === 0x2c) this.pos++;
      else if (c === 0x5d) {
        this.pos++;
        break;
      } else throw new Bad(this.pos, "expected ',' or ']'");
    }
    this.depth--;
  }
  digits() {
    const start = this.pos;
    while (this.peek() >= 0x30 && this.peek() <= 0x39) this.pos++;
    return this.pos - start;
  }
  number() {
    if (this.peek() === 0x2d) this.pos++;
    const c = this.peek();
    if (c === 0x30) this.pos++;
    else if (c >= 0x31 && c <= 0x39) this.digits();
    else throw new Bad(this.pos, 'invalid number');
    if (this.peek() === 0x2e) {
      this.pos++;
      if (this.digits() === 0) throw new Bad(this.pos, 'invalid number');
    }
    if (this.peek() === 0x65 || this.peek() === 0x45) {
      this.pos++;
      if (this.peek() === 0x2b || this.peek() === 0x2d) this.pos++;
      if (this.digits() === 0) throw new Bad(this.pos, 'invalid number');
    }
  }
  hex4() {
    if (this.pos + 4 > this.b.length) throw new Bad(this.pos, 'truncated \\u escape');
    const h = String.fromCharCode(...this.b.subarray(this.pos, this.pos + 4));
    if (!HEX.test(h)) throw new Bad(this.pos, 'invalid \\u escape');
    this.pos += 4;
    return parseInt(h, 16);
  }
  string() {
    this.pos++;
    for (;;) {
      const c = this.peek();
      if (c === undefined) throw new Bad(this.pos, 'unterminated string');
      if (c === 0x22) {
        this.pos++;
        return;
      }
      if (c < 0x20) throw new Bad(this.pos, 'control character in string');
      this.pos++;
      if (c !== 0x5c) continue;
      const e = this.peek();
      if (e === undefined) throw new Bad(this.pos, 'unterminated string');
      this.pos++;
      if ([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74].includes(e)) continue;
      if (e !== 0x75) throw new Bad(this.pos, 'invalid escape');
      const hi = this.hex4();
      if (hi >= 0xd800 && hi < 0xdc00) {
        if (!this.startsWith('\\u')) throw new Bad(this.pos, 'lone surrogate');
        this.pos += 2;
        const lo = this.hex4();
        if (!(lo >= 0xdc00 && lo < 0xe000)) throw new Bad(this.pos, 'lone surrogate');
      } else if (hi >= 0xdc00 && hi < 0xe000) {
        throw new Bad(this.pos, 'lone surrogate');
      }
    }
  }
}

/** [byte offset, reason] of the first error the Rust SDK's parser reports for `doc`
 * (Uint8Array), or undefined when it accepts it. */
export function locateJsonError(doc) {
  const bad = utf8ValidUpTo(doc);
  if (bad >= 0) return [bad, 'not UTF-8'];
  const p = new Parser(doc);
  try {
    p.ws();
    if (p.peek() === 0x7b) p.object();
    else p.value();
    p.ws();
    if (p.pos !== doc.length) return [p.pos, 'trailing characters'];
  } catch (e) {
    if (e instanceof Bad) return [e.pos, e.reason];
    throw e;
  }
  return undefined;
}
