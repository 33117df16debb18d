/*
 * arkflow.c — the C SDK's implementation: the WIT exports (describe, init, process-batch,
 * on-checkpoint) over the plugin's ak_* callbacks, wrappers of the state/fields/log/metrics
 * imports, a JSON reader/escaper and the per-batch state cache. Behaviour mirrors the Rust SDK
 * (plugins/sdk): same JSON acceptance rules and error messages, same escaping, same cache order.
 */
#include "arkflow.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AK_OUTCOME_UNSET 0xff

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) abort();
    return p;
}

/* A NUL-terminated copy of s[0..len). */
static char *cstr_n(const void *s, size_t len) {
    char *r = xmalloc(len + 1);
    if (len) memcpy(r, s, len);
    r[len] = 0;
    return r;
}

/* ================================ bytes and buffers ================================ */

ak_bytes ak_str(const char *s) { return ak_bytes_of(s, strlen(s)); }

bool ak_bytes_eq(ak_bytes a, ak_bytes b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

ak_bytes ak_bytes_dup(ak_bytes b) {
    ak_bytes r = {NULL, b.len};
    if (b.len) {
        r.ptr = xmalloc(b.len);
        memcpy(r.ptr, b.ptr, b.len);
    }
    return r;
}

void ak_bytes_free(ak_bytes *b) {
    if (b->len) free(b->ptr);
    b->ptr = NULL;
    b->len = 0;
}

void ak_buf_reserve(ak_buf *b, size_t extra) {
    if (b->cap - b->len >= extra) return;
    size_t cap = b->cap ? b->cap * 2 : 32;
    while (cap - b->len < extra) cap *= 2;
    b->ptr = xrealloc(b->ptr, cap);
    b->cap = cap;
}

void ak_buf_put(ak_buf *b, const void *data, size_t len) {
    if (!len) return;
    ak_buf_reserve(b, len);
    memcpy(b->ptr + b->len, data, len);
    b->len += len;
}

void ak_buf_putb(ak_buf *b, ak_bytes data) { ak_buf_put(b, data.ptr, data.len); }
void ak_buf_puts(ak_buf *b, const char *s) { ak_buf_put(b, s, strlen(s)); }

void ak_buf_putc(ak_buf *b, char c) {
    ak_buf_reserve(b, 1);
    b->ptr[b->len++] = (uint8_t)c;
}

void ak_buf_put_i64(ak_buf *b, int64_t v) {
    char tmp[24];
    size_t i = sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[--i] = '-';
    ak_buf_put(b, tmp + i, sizeof tmp - i);
}

ak_bytes ak_buf_take(ak_buf *b) {
    ak_bytes r = {b->ptr, b->len};
    if (b->len == 0) {
        free(b->ptr);
        r.ptr = NULL;
    }
    b->ptr = NULL;
    b->len = b->cap = 0;
    return r;
}

void ak_buf_free(ak_buf *b) {
    free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}

/* Length of the UTF-8 sequence at s[0..n) when valid (1..4), else the negated length of its
 * maximal valid prefix (at least 1): the unit Rust's from_utf8_lossy replaces with one U+FFFD. */
static int utf8_seq(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    int width;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) width = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        width = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        width = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else return -1;
    for (int i = 1; i < width; i++) {
        if ((size_t)i >= n) return -i;
        uint8_t d = s[i];
        if (i == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xbf)) return -i;
    }
    return width;
}

/* Offset of the first invalid UTF-8 sequence, or n when s is valid. */
static size_t utf8_valid_up_to(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int w = utf8_seq(s + i, n - i);
        if (w < 0) return i;
        i += (size_t)w;
    }
    return n;
}

void ak_buf_put_json_escaped(ak_buf *b, ak_bytes data) {
    const uint8_t *s = data.ptr;
    size_t n = data.len, i = 0, run = 0;
    static const char hex[] = "0123456789abcdef";
    while (i < n) {
        uint8_t c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            int w = utf8_seq(s + i, n - i);
            if (w > 0) {
                i += (size_t)w;
                continue;
            }
            ak_buf_put(b, s + run, i - run);
            ak_buf_put(b, "\xef\xbf\xbd", 3); /* U+FFFD */
            i += (size_t)(-w);
            run = i;
            continue;
        }
        ak_buf_put(b, s + run, i - run);
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case 0x08: esc[1] = 'b'; break;
        case 0x0c: esc[1] = 'f'; break;
        default:
            esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
            elen = 6;
        }
        ak_buf_put(b, esc, elen);
        i++;
        run = i;
    }
    ak_buf_put(b, s + run, n - run);
}

/* ====================================== errors ====================================== */

static plugin_string_t str_dup_n(const void *s, size_t len) {
    plugin_string_t r;
    plugin_string_dup_n(&r, (const char *)s, len);
    return r;
}

ak_error ak_error_new(ak_error_class cls, const char *code, const char *message) {
    ak_error e;
    e.class_ = cls;
    e.code = str_dup_n(code, strlen(code));
    e.message = str_dup_n(message, strlen(message));
    return e;
}

static ak_error error_from_buf(ak_error_class cls, const char *code, ak_buf *msg) {
    ak_error e;
    e.class_ = cls;
    e.code = str_dup_n(code, strlen(code));
    e.message = str_dup_n(msg->ptr, msg->len);
    ak_buf_free(msg);
    return e;
}

ak_error ak_error_newb(ak_error_class cls, const char *code, ak_bytes message) {
    ak_error e;
    e.class_ = cls;
    e.code = str_dup_n(code, strlen(code));
    e.message = str_dup_n(message.ptr, message.len);
    return e;
}

ak_error ak_errorf(ak_error_class cls, const char *code, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    return ak_error_new(cls, code, tmp);
}

/* Rust's Debug rendering of a string payload, e.g. "x\"y". */
static void put_debug_str(ak_buf *b, plugin_string_t s) {
    ak_buf_putc(b, '"');
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        switch (c) {
        case '"': ak_buf_puts(b, "\\\""); break;
        case '\\': ak_buf_puts(b, "\\\\"); break;
        case '\n': ak_buf_puts(b, "\\n"); break;
        case '\r': ak_buf_puts(b, "\\r"); break;
        case '\t': ak_buf_puts(b, "\\t"); break;
        case 0: ak_buf_puts(b, "\\0"); break;
        default:
            if (c < 0x20 || c == 0x7f) {
                static const char hex[] = "0123456789abcdef";
                ak_buf_puts(b, "\\u{");
                if (c >> 4) ak_buf_putc(b, hex[c >> 4]);
                ak_buf_putc(b, hex[c & 15]);
                ak_buf_putc(b, '}');
            } else {
                ak_buf_putc(b, (char)c);
            }
        }
    }
    ak_buf_putc(b, '"');
}

ak_error ak_error_from_state(const ak_state_error *e) {
    static const char *const codes[] = {"unknown-store",  "no-scope",      "key-too-large", "value-too-large",
                                        "quota-exceeded", "not-a-counter", "disabled"};
    static const char *const names[] = {"UnknownStore",  "NoScope",     "KeyTooLarge", "ValueTooLarge",
                                        "QuotaExceeded", "NotACounter", "Disabled"};
    unsigned t = e->tag < 7 ? e->tag : 6;
    ak_buf m = {0};
    ak_buf_puts(&m, "StateError::");
    ak_buf_puts(&m, names[t]);
    switch (e->tag) {
    case ARKFLOW_PLUGIN_STATE_STATE_ERROR_UNKNOWN_STORE:
    case ARKFLOW_PLUGIN_STATE_STATE_ERROR_QUOTA_EXCEEDED:
        ak_buf_putc(&m, '(');
        put_debug_str(&m, e->tag == ARKFLOW_PLUGIN_STATE_STATE_ERROR_UNKNOWN_STORE ? e->val.unknown_store
                                                                                  : e->val.quota_exceeded);
        ak_buf_putc(&m, ')');
        break;
    case ARKFLOW_PLUGIN_STATE_STATE_ERROR_KEY_TOO_LARGE:
    case ARKFLOW_PLUGIN_STATE_STATE_ERROR_VALUE_TOO_LARGE:
        ak_buf_putc(&m, '(');
        ak_buf_put_i64(&m, (int64_t)(e->tag == ARKFLOW_PLUGIN_STATE_STATE_ERROR_KEY_TOO_LARGE ? e->val.key_too_large
                                                                                             : e->val.value_too_large));
        ak_buf_putc(&m, ')');
        break;
    default:
        break;
    }
    return error_from_buf(AK_STATE, codes[t], &m);
}

/* Converts a failed import's state-error into *err and frees the state-error. */
static bool state_fail(ak_state_error *se, ak_error *err) {
    *err = ak_error_from_state(se);
    arkflow_plugin_state_state_error_free(se);
    return false;
}

ak_error ak_error_clone(const ak_error *e) {
    ak_error r;
    r.class_ = e->class_;
    r.code = str_dup_n(e->code.ptr, e->code.len);
    r.message = str_dup_n(e->message.ptr, e->message.len);
    return r;
}

void ak_error_free(ak_error *e) { arkflow_plugin_types_error_free(e); }

/* ===================================== outcomes ===================================== */

ak_record_out ak_record_out_new(ak_bytes value) {
    ak_record_out r;
    memset(&r, 0, sizeof r);
    r.value.is_some = true;
    r.value.val = ak_bytes_dup(value);
    return r;
}

void ak_outcome_emit(ak_outcome *o, ak_record_out record) {
    ak_record_out *one = xmalloc(sizeof *one);
    *one = record;
    o->tag = AK_OUTCOME_EMIT;
    o->val.emit.ptr = one;
    o->val.emit.len = 1;
}

void ak_outcome_emit_value(ak_outcome *o, ak_buf *value) {
    ak_record_out r;
    memset(&r, 0, sizeof r);
    r.value.is_some = true;
    r.value.val = ak_buf_take(value);
    ak_outcome_emit(o, r);
}

void ak_outcome_pass(ak_outcome *o, ak_record_in *in) {
    ak_record_out r;
    memset(&r, 0, sizeof r);
    r.value.is_some = in->value.is_some;
    if (in->value.is_some) r.value.val = ak_bytes_dup(in->value.val);
    r.headers.len = in->headers.len;
    r.headers.ptr = in->headers.len ? xmalloc(in->headers.len * sizeof(ak_header)) : NULL;
    for (size_t i = 0; i < in->headers.len; i++) {
        r.headers.ptr[i].key = str_dup_n(in->headers.ptr[i].key.ptr, in->headers.ptr[i].key.len);
        r.headers.ptr[i].value = ak_bytes_dup(in->headers.ptr[i].value);
    }
    ak_outcome_emit(o, r);
}

ak_buf *ak_emit_begin(ak_batch *b) {
    if (!b->values_.cap) ak_buf_reserve(&b->values_, b->len * 32); /* like the Rust SDK's Outcomes */
    b->mark_ = b->values_.len;
    return &b->values_;
}

void ak_emit_end(ak_batch *b, size_t i) {
    ak_outcome *o = &b->outcomes[i];
    o->tag = AK_OUTCOME_EMIT_SPAN_;
    o->val.span_.start = (uint32_t)b->mark_;
    o->val.span_.len = (uint32_t)(b->values_.len - b->mark_);
}

void ak_outcome_drop(ak_outcome *o) { o->tag = AK_OUTCOME_DROP; }

void ak_outcome_fail(ak_outcome *o, ak_error err) {
    o->tag = AK_OUTCOME_FAIL;
    o->val.fail = err;
}

/* ====================================== config ====================================== */

const char *ak_config_get(const ak_config *c, const char *key) {
    for (size_t i = c->len; i-- > 0;)
        if (strcmp(c->keys[i], key) == 0) return c->values[i];
    return NULL;
}

const char *ak_config_get_or(const ak_config *c, const char *key, const char *dflt) {
    const char *v = ak_config_get(c, key);
    return v ? v : dflt;
}

bool ak_config_require(const ak_config *c, const char *key, const char **out, ak_error *err) {
    *out = ak_config_get(c, key);
    if (*out) return true;
    ak_buf m = {0};
    ak_buf_puts(&m, "config `");
    ak_buf_puts(&m, key);
    ak_buf_puts(&m, "` is required");
    *err = error_from_buf(AK_CONFIG, "missing-config", &m);
    return false;
}

bool ak_config_get_i64(const ak_config *c, const char *key, int64_t dflt, int64_t *out, ak_error *err) {
    const char *raw = ak_config_get(c, key);
    *out = dflt;
    if (!raw) return true;
    const char *s = raw, *end = raw + strlen(raw);
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r')) end--;
    bool neg = false, ok = s < end;
    if (ok && (*s == '-' || *s == '+')) neg = *s++ == '-', ok = s < end;
    uint64_t u = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; ok && s < end; s++) {
        if (*s < '0' || *s > '9' || u > (limit - (uint64_t)(*s - '0')) / 10) ok = false;
        else u = u * 10 + (uint64_t)(*s - '0');
    }
    if (!ok) {
        ak_buf m = {0};
        ak_buf_puts(&m, "config `");
        ak_buf_puts(&m, key);
        ak_buf_puts(&m, "`: cannot parse \"");
        ak_buf_puts(&m, raw);
        ak_buf_puts(&m, "\" as i64");
        *err = error_from_buf(AK_CONFIG, "bad-config", &m);
        return false;
    }
    *out = neg ? (int64_t)(0 - u) : (int64_t)u;
    return true;
}

/* ======================================= JSON ======================================= */

#define AK_JSON_MAX_DEPTH 128

typedef struct {
    const uint8_t *b;
    size_t n, pos, depth;
    size_t err_at;
    const char *err;
} jparser;

static bool jfail(jparser *p, const char *reason) {
    p->err_at = p->pos;
    p->err = reason;
    return false;
}

static int jpeek(const jparser *p) { return p->pos < p->n ? p->b[p->pos] : -1; }

static void jws(jparser *p) {
    while (p->pos < p->n) {
        uint8_t c = p->b[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int hexval(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Exactly four hex digits. */
static bool jhex4(jparser *p, uint32_t *out) {
    if (p->n - p->pos < 4) return jfail(p, "truncated \\u escape");
    const uint8_t *h = p->b + p->pos;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hexval(h[i]);
        if (d < 0) return jfail(p, "invalid \\u escape");
        v = v * 16 + (uint32_t)d;
    }
    p->pos += 4;
    *out = v;
    return true;
}

static void put_utf8(ak_buf *b, uint32_t cp) {
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) u[0] = (uint8_t)cp, n = 1;
    else if (cp < 0x800) u[0] = (uint8_t)(0xc0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        u[0] = (uint8_t)(0xe0 | cp >> 12), u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)),
        u[2] = (uint8_t)(0x80 | (cp & 0x3f)), n = 3;
    else
        u[0] = (uint8_t)(0xf0 | cp >> 18), u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f)),
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (uint8_t)(0x80 | (cp & 0x3f)), n = 4;
    ak_buf_put(b, u, n);
}

/* A string at pos (which is '"'). With out: its unescaped contents, pointing into the document
 * when it has no escapes, else into *scratch (reset first). */
static bool jstring(jparser *p, ak_bytes *out, ak_buf *scratch) {
    p->pos++;
    size_t start = p->pos;
    for (;;) {
        int c = jpeek(p);
        if (c < 0) return jfail(p, "unterminated string");
        if (c == '"') {
            if (out) *out = ak_bytes_of(p->b + start, p->pos - start);
            p->pos++;
            return true;
        }
        if (c == '\\') break;
        if (c < 0x20) return jfail(p, "control character in string");
        p->pos++;
    }
    if (scratch) {
        scratch->len = 0;
        ak_buf_put(scratch, p->b + start, p->pos - start);
    }
    for (;;) {
        size_t run = p->pos;
        for (;;) {
            int c = jpeek(p);
            if (c < 0) return jfail(p, "unterminated string");
            if (c == '"' || c == '\\') break;
            if (c < 0x20) return jfail(p, "control character in string");
            p->pos++;
        }
        if (scratch) ak_buf_put(scratch, p->b + run, p->pos - run);
        if (jpeek(p) == '"') {
            p->pos++;
            if (out) *out = ak_bytes_of(scratch->ptr, scratch->len);
            return true;
        }
        p->pos++; /* the backslash */
        int c = jpeek(p);
        if (c < 0) return jfail(p, "unterminated string");
        p->pos++;
        uint32_t cp;
        switch (c) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = 0x08; break;
        case 'f': cp = 0x0c; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u': {
            uint32_t hi, lo;
            if (!jhex4(p, &hi)) return false;
            if (hi >= 0xd800 && hi < 0xdc00) {
                if (p->n - p->pos < 2 || p->b[p->pos] != '\\' || p->b[p->pos + 1] != 'u')
                    return jfail(p, "lone surrogate");
                p->pos += 2;
                if (!jhex4(p, &lo)) return false;
                if (lo < 0xdc00 || lo >= 0xe000) return jfail(p, "lone surrogate");
                cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
            } else if (hi >= 0xdc00 && hi < 0xe000) {
                return jfail(p, "lone surrogate");
            } else {
                cp = hi;
            }
            break;
        }
        default: return jfail(p, "invalid escape");
        }
        if (scratch) put_utf8(scratch, cp);
    }
}

static bool jdigits(jparser *p) {
    size_t start = p->pos;
    while (p->pos < p->n && p->b[p->pos] >= '0' && p->b[p->pos] <= '9') p->pos++;
    return p->pos > start;
}

static bool jnumber(jparser *p) {
    if (jpeek(p) == '-') p->pos++;
    int c = jpeek(p);
    if (c == '0') p->pos++;
    else if (c >= '1' && c <= '9') jdigits(p);
    else return jfail(p, "invalid number");
    if (jpeek(p) == '.') {
        p->pos++;
        if (!jdigits(p)) return jfail(p, "invalid number");
    }
    c = jpeek(p);
    if (c == 'e' || c == 'E') {
        p->pos++;
        c = jpeek(p);
        if (c == '+' || c == '-') p->pos++;
        if (!jdigits(p)) return jfail(p, "invalid number");
    }
    return true;
}

static bool jliteral(jparser *p, const char *word) {
    size_t n = strlen(word);
    if (p->n - p->pos < n || memcmp(p->b + p->pos, word, n) != 0) return jfail(p, "invalid literal");
    p->pos += n;
    return true;
}

static bool jvalue(jparser *p, ak_json_value *out, ak_buf *scratch);

/* An object at pos; with want: its first member named want goes to *out (*found = true). */
static bool jobject(jparser *p, const char *want, bool *found, ak_json_value *out, ak_buf *names, ak_buf *scratch) {
    if (++p->depth > AK_JSON_MAX_DEPTH) return jfail(p, "nesting too deep");
    p->pos++; /* '{' */
    jws(p);
    if (jpeek(p) == '}') {
        p->pos++;
        p->depth--;
        return true;
    }
    size_t want_len = want ? strlen(want) : 0;
    for (;;) {
        jws(p);
        if (jpeek(p) != '"') return jfail(p, "expected a member name");
        ak_bytes name;
        if (!jstring(p, want ? &name : NULL, want ? names : NULL)) return false;
        jws(p);
        if (jpeek(p) != ':') return jfail(p, "expected ':'");
        p->pos++;
        bool take = want && !*found && name.len == want_len && memcmp(name.ptr, want, want_len) == 0;
        if (!jvalue(p, take ? out : NULL, take ? scratch : NULL)) return false;
        if (take) *found = true;
        jws(p);
        int c = jpeek(p);
        if (c == ',') p->pos++;
        else if (c == '}') {
            p->pos++;
            break;
        } else return jfail(p, "expected ',' or '}'");
    }
    p->depth--;
    return true;
}

static bool jarray(jparser *p) {
    if (++p->depth > AK_JSON_MAX_DEPTH) return jfail(p, "nesting too deep");
    p->pos++; /* '[' */
    jws(p);
    if (jpeek(p) == ']') {
        p->pos++;
        p->depth--;
        return true;
    }
    for (;;) {
        if (!jvalue(p, NULL, NULL)) return false;
        jws(p);
        int c = jpeek(p);
        if (c == ',') p->pos++;
        else if (c == ']') {
            p->pos++;
            break;
        } else return jfail(p, "expected ',' or ']'");
    }
    p->depth--;
    return true;
}

static bool jvalue(jparser *p, ak_json_value *out, ak_buf *scratch) {
    jws(p);
    size_t start = p->pos;
    int c = jpeek(p);
    ak_json_kind kind;
    bool ok;
    switch (c) {
    case '"': {
        ak_bytes s;
        if (!jstring(p, out ? &s : NULL, scratch)) return false;
        if (out) {
            out->kind = AK_JSON_STRING;
            out->text = s;
        }
        return true;
    }
    case '{': {
        bool found = false;
        kind = AK_JSON_OBJECT, ok = jobject(p, NULL, &found, NULL, NULL, NULL);
        break;
    }
    case '[': kind = AK_JSON_ARRAY, ok = jarray(p); break;
    case 't': kind = AK_JSON_BOOL, ok = jliteral(p, "true"); break;
    case 'f': kind = AK_JSON_BOOL, ok = jliteral(p, "false"); break;
    case 'n': kind = AK_JSON_NULL, ok = jliteral(p, "null"); break;
    case -1: return jfail(p, "unexpected end of input");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) kind = AK_JSON_NUMBER, ok = jnumber(p);
        else return jfail(p, "unexpected character");
    }
    if (ok && out) {
        out->kind = kind;
        out->text = ak_bytes_of(p->b + start, p->pos - start);
    }
    return ok;
}

static void json_error(const jparser *p, ak_error *err) {
    ak_buf m = {0};
    ak_buf_puts(&m, "invalid JSON at byte ");
    ak_buf_put_i64(&m, (int64_t)p->err_at);
    ak_buf_puts(&m, ": ");
    ak_buf_puts(&m, p->err);
    *err = error_from_buf(AK_INVALID_INPUT, "bad-json", &m);
}

int ak_json_field(ak_bytes doc, const char *name, ak_json_value *out, ak_error *err) {
    jparser p = {doc.ptr, doc.len, 0, 0, 0, NULL};
    ak_json_value v = {AK_JSON_NULL, {NULL, 0}, NULL};
    ak_buf names = {0}, scratch = {0};
    bool found = false, ok;
    size_t valid = utf8_valid_up_to(doc.ptr, doc.len);
    if (valid != doc.len) {
        p.pos = valid;
        ok = jfail(&p, "not UTF-8");
    } else {
        jws(&p);
        if (jpeek(&p) == '{') ok = jobject(&p, name, &found, &v, &names, &scratch);
        else ok = jvalue(&p, NULL, NULL);
        if (ok) {
            jws(&p);
            if (p.pos != p.n) ok = jfail(&p, "trailing characters");
        }
    }
    ak_buf_free(&names);
    if (!ok) {
        ak_buf_free(&scratch);
        json_error(&p, err);
        return -1;
    }
    if (!found) {
        ak_buf_free(&scratch);
        return 0;
    }
    if (v.kind == AK_JSON_STRING && scratch.ptr && v.text.ptr == scratch.ptr) {
        v.owned_ = scratch.ptr; /* unescaped copy: keep it */
    } else {
        ak_buf_free(&scratch);
    }
    *out = v;
    return 1;
}

bool ak_json_validate(ak_bytes doc, ak_error *err) {
    ak_json_value v;
    int r = ak_json_field(doc, "", &v, err);
    if (r == 1) ak_json_value_free(&v);
    return r >= 0;
}

bool ak_json_as_key(const ak_json_value *v, ak_bytes *out) {
    if (v->kind != AK_JSON_STRING && v->kind != AK_JSON_NUMBER) return false;
    *out = v->text;
    return true;
}

void ak_json_value_free(ak_json_value *v) {
    free(v->owned_);
    v->owned_ = NULL;
}

/* ================================== record helpers ================================== */

bool ak_record_key(const ak_record_in *r, const char *key_field, ak_key *out) {
    memset(out, 0, sizeof *out);
    if (r->key.is_some) {
        out->ok = true;
        out->bytes = r->key.val;
        return true;
    }
    if (!key_field || !r->value.is_some) {
        out->err = ak_invalid_input("no-key", "record has no key and no `key_field` value");
        return false;
    }
    ak_json_value v;
    int found = ak_json_field(r->value.val, key_field, &v, &out->err);
    if (found < 0) return false;
    if (found && ak_json_as_key(&v, &out->bytes)) {
        out->ok = true;
        out->owned_ = v.owned_;
        return true;
    }
    if (found) ak_json_value_free(&v);
    ak_buf m = {0};
    ak_buf_puts(&m, "no string/number field `");
    ak_buf_puts(&m, key_field);
    ak_buf_putc(&m, '`');
    out->err = error_from_buf(AK_INVALID_INPUT, "no-key", &m);
    return false;
}

void ak_key_free(ak_key *k) {
    free(k->owned_);
    k->owned_ = NULL;
    if (!k->ok && k->err.code.ptr) ak_error_free(&k->err);
    memset(&k->err, 0, sizeof k->err);
}

ak_key *ak_batch_keys(ak_batch *batch, const char *key_field) {
    if (batch->keys_) return batch->keys_;
    ak_key *keys = xmalloc(batch->len * sizeof *keys);
    for (size_t i = 0; i < batch->len; i++) ak_record_key(&batch->records[i], key_field, &keys[i]);
    batch->keys_ = keys;
    return keys;
}

const ak_bytes *ak_record_header(const ak_record_in *r, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < r->headers.len; i++) {
        const ak_header *h = &r->headers.ptr[i];
        if (h->key.len == n && memcmp(h->key.ptr, name, n) == 0) return &h->value;
    }
    return NULL;
}

/* =================================== typed fields =================================== */

/* The declaration last accepted by the host: names (owned copies) and types, in the host's
 * column order. */
static char **g_field_names;
static ak_field_type *g_field_types;
static size_t g_fields_len;

static void fields_forget(void) {
    for (size_t i = 0; i < g_fields_len; i++) free(g_field_names[i]);
    free(g_field_names);
    free(g_field_types);
    g_field_names = NULL;
    g_field_types = NULL;
    g_fields_len = 0;
}

bool ak_fields_declare(const ak_field *fields, size_t n, ak_error *err) {
    arkflow_plugin_fields_field_t *list = n ? xmalloc(n * sizeof *list) : NULL;
    for (size_t i = 0; i < n; i++) {
        list[i].name.ptr = (uint8_t *)fields[i].name;
        list[i].name.len = strlen(fields[i].name);
        list[i].type = fields[i].type;
    }
    arkflow_plugin_fields_list_field_t arg = {list, n};
    plugin_string_t why;
    bool ok = arkflow_plugin_fields_declare(&arg, &why);
    free(list);
    if (!ok) {
        *err = ak_error_newb(AK_CONFIG, "bad-fields", ak_bytes_of(why.ptr, why.len));
        plugin_string_free(&why);
        return false;
    }
    fields_forget();
    g_field_names = n ? xmalloc(n * sizeof *g_field_names) : NULL;
    g_field_types = n ? xmalloc(n * sizeof *g_field_types) : NULL;
    for (size_t i = 0; i < n; i++) {
        g_field_names[i] = cstr_n(fields[i].name, strlen(fields[i].name));
        g_field_types[i] = fields[i].type;
    }
    g_fields_len = n;
    return true;
}

const ak_fields *ak_batch_fields(ak_batch *batch, ak_error *err) {
    if (batch->fields_) return batch->fields_;
    ak_fields *f = xmalloc(sizeof *f);
    plugin_string_t why;
    if (!arkflow_plugin_fields_columns(&f->raw_, &why)) {
        free(f);
        *err = ak_error_newb(AK_INTERNAL, "fields", ak_bytes_of(why.ptr, why.len));
        plugin_string_free(&why);
        return NULL;
    }
    f->len = batch->len;
    f->mismatched = f->raw_.mismatched.ptr;
    f->mismatched_len = f->raw_.mismatched.len;
    batch->fields_ = f;
    return f;
}

static void fields_free(ak_fields *f) {
    if (!f) return;
    arkflow_plugin_fields_decoded_free(&f->raw_);
    free(f);
}

bool ak_fields_mismatch(const ak_fields *f, size_t i, ak_bytes *reason) {
    size_t lo = 0, hi = f->mismatched_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t at = f->mismatched[mid].f0;
        if (at == i) {
            if (reason) *reason = ak_bytes_of(f->mismatched[mid].f1.ptr, f->mismatched[mid].f1.len);
            return true;
        }
        if (at < i) lo = mid + 1;
        else hi = mid;
    }
    return false;
}

static const char *field_type_name(ak_field_type t) {
    switch (t) {
    case AK_FIELD_BOOL: return "boolean";
    case AK_FIELD_I64: return "int64";
    case AK_FIELD_F64: return "float64";
    default: return "utf8";
    }
}

/* The column of `name` declared as `t` (and holding values of that type), else NULL with *err set;
 * *items: how many records its valid bitmap covers (at most f->len). */
static const arkflow_plugin_fields_typed_column_t *field_column(const ak_fields *f, const char *name, ak_field_type t,
                                                               size_t *items, ak_error *err) {
    for (size_t j = 0; j < g_fields_len && j < f->raw_.columns.len; j++) {
        if (g_field_types[j] != t || strcmp(g_field_names[j], name) != 0) continue;
        const arkflow_plugin_fields_typed_column_t *c = &f->raw_.columns.ptr[j];
        if (c->values.tag != t) break; /* the variant's cases are in field-type order */
        size_t bits = c->valid.len * 8;
        *items = bits < f->len ? bits : f->len;
        return c;
    }
    ak_buf m = {0};
    ak_buf_puts(&m, "field `");
    ak_buf_puts(&m, name);
    ak_buf_puts(&m, "` was not declared as ");
    ak_buf_puts(&m, field_type_name(t));
    ak_buf_puts(&m, " (ak_fields_declare)");
    *err = error_from_buf(AK_INTERNAL, "undeclared-field", &m);
    return NULL;
}

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

bool ak_fields_i64(const ak_fields *f, const char *name, ak_i64s *out, ak_error *err) {
    size_t n;
    const arkflow_plugin_fields_typed_column_t *c = field_column(f, name, AK_FIELD_I64, &n, err);
    if (!c) return false;
    out->valid = c->valid.ptr;
    out->values = c->values.val.int64.ptr;
    out->len = min_size(n, c->values.val.int64.len);
    return true;
}

bool ak_fields_f64(const ak_fields *f, const char *name, ak_f64s *out, ak_error *err) {
    size_t n;
    const arkflow_plugin_fields_typed_column_t *c = field_column(f, name, AK_FIELD_F64, &n, err);
    if (!c) return false;
    out->valid = c->valid.ptr;
    out->values = c->values.val.float64.ptr;
    out->len = min_size(n, c->values.val.float64.len);
    return true;
}

bool ak_fields_bool(const ak_fields *f, const char *name, ak_bools *out, ak_error *err) {
    size_t n;
    const arkflow_plugin_fields_typed_column_t *c = field_column(f, name, AK_FIELD_BOOL, &n, err);
    if (!c) return false;
    out->valid = c->valid.ptr;
    out->values = c->values.val.boolean.ptr;
    out->len = min_size(n, c->values.val.boolean.len * 8);
    return true;
}

bool ak_fields_str(const ak_fields *f, const char *name, ak_strs *out, ak_error *err) {
    size_t n;
    const arkflow_plugin_fields_typed_column_t *c = field_column(f, name, AK_FIELD_UTF8, &n, err);
    if (!c) return false;
    out->valid = c->valid.ptr;
    out->data = c->values.val.utf8.data.ptr;
    out->data_len = c->values.val.utf8.data.len;
    out->ends = c->values.val.utf8.ends.ptr;
    out->len = min_size(n, c->values.val.utf8.ends.len);
    return true;
}

/* ======================================= state ====================================== */

static arkflow_plugin_state_borrow_store_t borrow(ak_store s) { return arkflow_plugin_state_borrow_store(s); }

bool ak_store_open(const char *name, ak_store *out, ak_error *err) {
    plugin_string_t n = {(uint8_t *)name, strlen(name)};
    ak_state_error se;
    if (!arkflow_plugin_state_static_store_open(&n, out, &se)) return state_fail(&se, err);
    return true;
}

bool ak_store_get(ak_store s, ak_bytes key, ak_opt_bytes *out, ak_error *err) {
    ak_state_error se;
    if (!arkflow_plugin_state_method_store_get(borrow(s), &key, out, &se)) return state_fail(&se, err);
    return true;
}

bool ak_store_put(ak_store s, ak_bytes key, ak_bytes value, ak_error *err) {
    ak_state_error se;
    if (!arkflow_plugin_state_method_store_put(borrow(s), &key, &value, &se)) return state_fail(&se, err);
    return true;
}

bool ak_store_delete(ak_store s, ak_bytes key, bool *was_present, ak_error *err) {
    ak_state_error se;
    bool present;
    if (!arkflow_plugin_state_method_store_delete(borrow(s), &key, &present, &se)) return state_fail(&se, err);
    if (was_present) *was_present = present;
    return true;
}

bool ak_store_get_many(ak_store s, const ak_bytes *keys, size_t n, ak_opt_bytes_list *out, ak_error *err) {
    plugin_list_list_u8_t list = {(plugin_list_u8_t *)keys, n};
    ak_state_error se;
    if (!arkflow_plugin_state_method_store_get_many(borrow(s), &list, out, &se)) return state_fail(&se, err);
    return true;
}

bool ak_store_put_many(ak_store s, const ak_bytes *keys, const ak_bytes *values, size_t n, ak_error *err) {
    plugin_tuple2_list_u8_list_u8_t *entries = xmalloc(n * sizeof *entries);
    for (size_t i = 0; i < n; i++) entries[i].f0 = keys[i], entries[i].f1 = values[i];
    plugin_list_tuple2_list_u8_list_u8_t list = {entries, n};
    ak_state_error se;
    bool ok = arkflow_plugin_state_method_store_put_many(borrow(s), &list, &se);
    free(entries);
    return ok ? true : state_fail(&se, err);
}

bool ak_store_delete_many(ak_store s, const ak_bytes *keys, size_t n, ak_error *err) {
    plugin_list_list_u8_t list = {(plugin_list_u8_t *)keys, n};
    ak_state_error se;
    if (!arkflow_plugin_state_method_store_delete_many(borrow(s), &list, &se)) return state_fail(&se, err);
    return true;
}

bool ak_store_increment(ak_store s, ak_bytes key, int64_t delta, int64_t *out, ak_error *err) {
    ak_state_error se;
    if (!arkflow_plugin_state_method_store_increment(borrow(s), &key, delta, out, &se)) return state_fail(&se, err);
    return true;
}

bool ak_store_scan_prefix(ak_store s, ak_bytes prefix, const ak_bytes *start_after, uint32_t limit,
                          ak_scan_page *out, ak_error *err) {
    ak_bytes after = start_after ? *start_after : ak_bytes_of(NULL, 0);
    ak_state_error se;
    if (!arkflow_plugin_state_method_store_scan_prefix(borrow(s), &prefix, start_after ? &after : NULL, limit, out, &se))
        return state_fail(&se, err);
    return true;
}

void ak_scan_page_free(ak_scan_page *p) { arkflow_plugin_state_scan_page_free(p); }

void ak_encode_i64(int64_t v, uint8_t out[8]) {
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(u >> (8 * i));
}

bool ak_decode_i64(ak_bytes b, int64_t *out) {
    if (b.len != 8) return false;
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--) u = u << 8 | b.ptr[i];
    *out = (int64_t)u;
    return true;
}

/* ------------------------- the 0.2.0 batch, as ak_record_in views -------------------------- */

static bool col_present(const arkflow_plugin_types_column_t *c, size_t i) {
    return c->valid.len == 0 || (c->valid.ptr[i / 8] >> (i % 8)) & 1;
}

/* Item i of a column as an option view into its data (not owned). */
static ak_opt_bytes col_item(const arkflow_plugin_types_column_t *c, size_t i) {
    ak_opt_bytes o;
    memset(&o, 0, sizeof o);
    if (i >= c->ends.len || !col_present(c, i)) return o;
    size_t start = i ? c->ends.ptr[i - 1] : 0, end = c->ends.ptr[i];
    if (end < start || end > c->data.len) return o;
    o.is_some = true;
    o.val.ptr = c->data.ptr + start;
    o.val.len = end - start;
    return o;
}

/* Record views of a batch; *headers gets the one array their header lists point into. */
static ak_record_in *record_views(const arkflow_plugin_types_batch_t *b, size_t n, ak_header **headers) {
    ak_record_in *recs = n ? xmalloc(n * sizeof *recs) : NULL;
    size_t h = b->headers.len;
    *headers = h ? xmalloc(h * sizeof(ak_header)) : NULL;
    for (size_t j = 0; j < h; j++) (*headers)[j] = b->headers.ptr[j].f1;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        ak_record_in *r = &recs[i];
        r->key = col_item(&b->keys, i);
        r->value = col_item(&b->values, i);
        r->timestamp_ms = i < b->timestamps.len ? b->timestamps.ptr[i] : 0;
        r->partition = i < b->partitions.len ? b->partitions.ptr[i] : 0;
        r->offset = i < b->offsets.len ? b->offsets.ptr[i] : 0;
        while (at < h && b->headers.ptr[at].f0 < i) at++;
        size_t from = at;
        while (at < h && b->headers.ptr[at].f0 == i) at++;
        r->headers.ptr = at > from ? *headers + from : NULL;
        r->headers.len = at - from;
    }
    return recs;
}

/* ------------------------------ outcomes, packed on return --------------------------------- */

typedef struct {
    uint8_t *data;
    uint32_t *ends;
    uint8_t *valid;
    size_t len, bytes, cap;
    bool absent;
} colbuf;

static void colbuf_init(colbuf *c, size_t items, size_t bytes) {
    memset(c, 0, sizeof *c);
    c->cap = items;
    c->data = xmalloc(bytes);
    c->ends = xmalloc(items * sizeof(uint32_t));
    c->valid = xmalloc((items + 7) / 8);
    memset(c->valid, 0, (items + 7) / 8);
}

static void colbuf_push(colbuf *c, const ak_opt_bytes *item) {
    if (item->is_some) {
        if (item->val.len) memcpy(c->data + c->bytes, item->val.ptr, item->val.len);
        c->bytes += item->val.len;
        c->valid[c->len / 8] |= (uint8_t)(1u << (c->len % 8));
    } else {
        c->absent = true;
    }
    c->ends[c->len++] = (uint32_t)c->bytes;
}

static arkflow_plugin_types_column_t colbuf_finish(colbuf *c) {
    arkflow_plugin_types_column_t r;
    r.data.ptr = c->data;
    r.data.len = c->bytes;
    r.ends.ptr = c->ends;
    r.ends.len = c->len;
    if (!c->bytes) free(c->data), r.data.ptr = NULL; /* the glue frees only non-empty lists */
    if (!c->len) free(c->ends), r.ends.ptr = NULL;
    if (c->absent) {
        r.valid.ptr = c->valid;
        r.valid.len = (c->len + 7) / 8;
    } else {
        free(c->valid);
        r.valid.ptr = NULL;
        r.valid.len = 0;
    }
    return r;
}

/* ==================================== state cache =================================== */

/* Like the Rust SDK's StateCache (plugins/sdk/src/state.rs): nothing is allocated per key. Slot
 * keys live back to back in keys_ (which, with key_ends_, is also the get-column request),
 * values in vals_ (initially the get-column reply's data buffer, taken over), found through an
 * open-addressing table of slot numbers (a power of two, at least twice the slots). */

#define AK_CACHE_ABSENT 0xffffffffu

static uint64_t fxhash(const uint8_t *p, size_t n) {
    const uint64_t k = 0x517cc1b727220a95ull;
    uint64_t h = 0;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = ((h << 5 | h >> 59) ^ w) * k;
    }
    for (; n; p++, n--) h = ((h << 5 | h >> 59) ^ *p) * k;
    return h ^ (h >> 29);
}

static inline size_t cache_key_start(const ak_cache *c, size_t i) { return i ? c->key_ends_[i - 1] : 0; }

/* a[0..n) == b[0..n), a word at a time (keys are short; wasi-libc's memcmp is a byte loop). */
static inline bool bytes_eq(const uint8_t *a, const uint8_t *b, size_t n) {
    for (; n >= 8; a += 8, b += 8, n -= 8) {
        uint64_t x, y;
        memcpy(&x, a, 8), memcpy(&y, b, 8);
        if (x != y) return false;
    }
    if (n >= 4) {
        uint32_t x, y, z, w;
        memcpy(&x, a, 4), memcpy(&y, b, 4), memcpy(&z, a + n - 4, 4), memcpy(&w, b + n - 4, 4);
        return x == y && z == w;
    }
    for (; n; a++, b++, n--)
        if (*a != *b) return false;
    return true;
}

/* Whether slot i's key is `key`. */
static inline bool cache_key_is(const ak_cache *c, size_t i, ak_bytes key) {
    size_t start = cache_key_start(c, i);
    return c->key_ends_[i] - start == key.len && (key.len == 0 || bytes_eq(c->keys_.ptr + start, key.ptr, key.len));
}

/* Room for `extra` more slots, and a table at least twice the slots (rebuilt when it grows). */
static void cache_reserve(ak_cache *c, size_t extra) {
    size_t need = c->len + extra;
    if (need > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        while (cap < need) cap *= 2;
        c->slots_ = xrealloc(c->slots_, cap * sizeof *c->slots_);
        c->key_ends_ = xrealloc(c->key_ends_, cap * sizeof *c->key_ends_);
        c->cap = cap;
    }
    if (need * 2 <= c->table_cap) return;
    size_t tcap = c->table_cap ? c->table_cap * 2 : 32;
    while (tcap < need * 2) tcap *= 2;
    free(c->table_);
    c->table_ = calloc(tcap, sizeof *c->table_);
    if (!c->table_) abort();
    c->table_cap = tcap;
    for (size_t i = 0; i < c->len; i++) {
        size_t j = c->slots_[i].hash & (tcap - 1);
        while (c->table_[j]) j = (j + 1) & (tcap - 1);
        c->table_[j] = (uint32_t)i + 1;
    }
}

/* The slot of key, or -1; with insert: creates it (absent value). */
static long cache_slot(ak_cache *c, ak_bytes key, bool insert) {
    uint64_t h = fxhash(key.ptr, key.len);
    size_t j = 0;
    if (c->table_cap) {
        size_t mask = c->table_cap - 1;
        for (j = h & mask; c->table_[j]; j = (j + 1) & mask) {
            size_t i = c->table_[j] - 1;
            if (c->slots_[i].hash == h && cache_key_is(c, i, key)) return (long)i;
        }
    }
    if (!insert) return -1;
    if (c->len + 1 > c->cap || (c->len + 1) * 2 > c->table_cap) {
        cache_reserve(c, 1);
        for (j = h & (c->table_cap - 1); c->table_[j]; j = (j + 1) & (c->table_cap - 1)) {}
    }
    size_t i = c->len++;
    c->table_[j] = (uint32_t)i + 1;
    ak_buf_put(&c->keys_, key.ptr, key.len);
    c->key_ends_[i] = (uint32_t)c->keys_.len;
    c->slots_[i].hash = h;
    c->slots_[i].val_start = 0;
    c->slots_[i].val_len = AK_CACHE_ABSENT;
    c->slots_[i].dirty = false;
    return (long)i;
}

/* The slot of key for a write (created when new). Writes usually come in the order the keys were
 * loaded (one per record), so the next loaded key's slot is tried first: a hit costs one key
 * comparison instead of a hash and a probe. */
static size_t cache_slot_next(ak_cache *c, ak_bytes key) {
    if (c->cursor_ < c->seq_len_) {
        size_t i = c->seq_[c->cursor_];
        if (cache_key_is(c, i, key)) {
            c->cursor_++;
            return i;
        }
    }
    return (size_t)cache_slot(c, key, true);
}

static void cache_mark(ak_cache *c, size_t i) {
    if (c->slots_[i].dirty) return;
    c->slots_[i].dirty = true;
    if (c->writes == c->writes_cap) {
        c->writes_cap = c->writes_cap ? c->writes_cap * 2 : (c->cap > 16 ? c->cap : 16);
        c->write_order_ = xrealloc(c->write_order_, c->writes_cap * sizeof *c->write_order_);
    }
    c->write_order_[c->writes++] = (uint32_t)i;
}

/* Sets slot i's value: in place when the length is unchanged, else appended to vals_. */
static void cache_set(ak_cache *c, size_t i, const void *v, size_t n) {
    ak_cache_slot_ *s = &c->slots_[i];
    if (s->val_len == n) {
        if (n) memmove(c->vals_.ptr + s->val_start, v, n); /* v may be this value itself */
        return;
    }
    uintptr_t at = (uintptr_t)v, base = (uintptr_t)c->vals_.ptr;
    if (n && base && at >= base && at < base + c->vals_.len) { /* v is another key's value */
        ak_buf_reserve(&c->vals_, n);
        v = c->vals_.ptr + (at - base);
    }
    s->val_start = (uint32_t)c->vals_.len;
    s->val_len = (uint32_t)n;
    ak_buf_put(&c->vals_, v, n);
}

static ak_error bad_get_column(size_t got, size_t n) {
    ak_buf m = {0};
    ak_buf_puts(&m, "get-column returned ");
    ak_buf_put_i64(&m, (int64_t)got);
    ak_buf_puts(&m, " values for ");
    ak_buf_put_i64(&m, (int64_t)n);
    ak_buf_puts(&m, " keys");
    return error_from_buf(AK_INTERNAL, "bad-get-column", &m);
}

/* Loads slots [first, len) with one get-column whose request is the key buffer itself. */
static bool cache_fetch(ak_cache *c, ak_store s, size_t first, ak_error *err) {
    size_t n = c->len - first;
    if (n == 0) return true;
    size_t base = cache_key_start(c, first);
    uint32_t *ends = c->key_ends_ + first;
    if (base) { /* a second load: the request's ends count from its first key */
        ends = xmalloc(n * sizeof *ends);
        for (size_t i = 0; i < n; i++) ends[i] = c->key_ends_[first + i] - (uint32_t)base;
    }
    arkflow_plugin_types_column_t keys = {{c->keys_.len ? c->keys_.ptr + base : NULL, c->keys_.len - base}, {ends, n}, {NULL, 0}}, vals;
    ak_state_error se;
    bool ok = arkflow_plugin_state_method_store_get_column(borrow(s), &keys, &vals, &se);
    if (base) free(ends);
    if (!ok) return state_fail(&se, err);
    if (vals.ends.len != n || (n && vals.ends.ptr[n - 1] > vals.data.len)) {
        *err = bad_get_column(vals.ends.len, n);
        arkflow_plugin_types_column_free(&vals);
        return false;
    }
    size_t off = c->vals_.len;
    if (off == 0 && c->vals_.cap == 0 && vals.data.len) { /* take the reply's buffer over */
        free(c->vals_.ptr);
        c->vals_.ptr = vals.data.ptr;
        c->vals_.len = c->vals_.cap = vals.data.len;
        vals.data.len = 0;
    } else {
        ak_buf_put(&c->vals_, vals.data.ptr, vals.data.len);
    }
    for (size_t i = 0; i < n; i++) {
        ak_cache_slot_ *sl = &c->slots_[first + i];
        if (!col_present(&vals, i)) continue;
        uint32_t start = i ? vals.ends.ptr[i - 1] : 0, end = vals.ends.ptr[i];
        if (end < start) continue;
        sl->val_start = (uint32_t)off + start;
        sl->val_len = end - start;
    }
    arkflow_plugin_types_column_free(&vals);
    return true;
}

/* Room for n more keys (and their sequence entries) before a load. */
static void cache_reserve_load(ak_cache *c, size_t n, size_t bytes) {
    cache_reserve(c, n);
    ak_buf_reserve(&c->keys_, bytes);
    c->seq_ = xrealloc(c->seq_, (c->seq_len_ + n) * sizeof *c->seq_);
}

bool ak_cache_load(ak_cache *c, ak_store s, const ak_bytes *keys, size_t n, ak_error *err) {
    size_t first = c->len, bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += keys[i].len;
    cache_reserve_load(c, n, bytes);
    for (size_t i = 0; i < n; i++) c->seq_[c->seq_len_++] = (uint32_t)cache_slot(c, keys[i], true);
    return cache_fetch(c, s, first, err);
}

bool ak_cache_load_keys(ak_cache *c, ak_store s, const ak_key *keys, size_t n, ak_error *err) {
    size_t first = c->len, bytes = 0;
    for (size_t i = 0; i < n; i++)
        if (keys[i].ok) bytes += keys[i].bytes.len;
    cache_reserve_load(c, n, bytes);
    for (size_t i = 0; i < n; i++)
        if (keys[i].ok) c->seq_[c->seq_len_++] = (uint32_t)cache_slot(c, keys[i].bytes, true);
    return cache_fetch(c, s, first, err);
}

const uint8_t *ak_cache_get(const ak_cache *c, ak_bytes key, size_t *len) {
    long i = cache_slot((ak_cache *)c, key, false);
    if (i < 0 || c->slots_[i].val_len == AK_CACHE_ABSENT) return NULL;
    *len = c->slots_[i].val_len;
    return c->vals_.ptr ? c->vals_.ptr + c->slots_[i].val_start : (const uint8_t *)"";
}

void ak_cache_put(ak_cache *c, ak_bytes key, ak_bytes value) {
    size_t i = cache_slot_next(c, key);
    cache_set(c, i, value.ptr, value.len);
    cache_mark(c, i);
}

static ak_error not_a_counter(void) {
    ak_state_error se = {.tag = ARKFLOW_PLUGIN_STATE_STATE_ERROR_NOT_A_COUNTER};
    return ak_error_from_state(&se);
}

bool ak_cache_get_i64(const ak_cache *c, ak_bytes key, bool *found, int64_t *v, ak_error *err) {
    size_t n;
    const uint8_t *p = ak_cache_get(c, key, &n);
    *found = p != NULL;
    if (!p) return true;
    if (!ak_decode_i64(ak_bytes_of(p, n), v)) {
        *err = not_a_counter();
        return false;
    }
    return true;
}

void ak_cache_put_i64(ak_cache *c, ak_bytes key, int64_t v) {
    uint8_t b[8];
    ak_encode_i64(v, b);
    ak_cache_put(c, key, ak_bytes_of(b, 8));
}

bool ak_cache_increment(ak_cache *c, ak_bytes key, int64_t delta, int64_t *out, ak_error *err) {
    size_t i = cache_slot_next(c, key);
    ak_cache_slot_ *s = &c->slots_[i];
    uint64_t v = (uint64_t)delta;
    if (s->val_len == 8) {
        uint64_t old;
        memcpy(&old, c->vals_.ptr + s->val_start, 8); /* little-endian, like wasm32 */
        v += old;
        memcpy(c->vals_.ptr + s->val_start, &v, 8);
    } else if (s->val_len != AK_CACHE_ABSENT) {
        *err = not_a_counter();
        return false;
    } else {
        cache_set(c, i, &v, 8);
    }
    cache_mark(c, i);
    *out = (int64_t)v;
    return true;
}

bool ak_cache_flush(ak_cache *c, ak_store s, ak_error *err) {
    size_t n = c->writes;
    if (n == 0) return true;
    /* Keys: the key buffer itself when every slot was written in slot order (the usual case). */
    bool in_order = n == c->len;
    for (size_t w = 0; in_order && w < n; w++) in_order = c->write_order_[w] == w;
    arkflow_plugin_types_column_t keys = {{c->keys_.ptr, c->keys_.len}, {c->key_ends_, n}, {NULL, 0}};
    if (!in_order) {
        size_t bytes = 0;
        for (size_t w = 0; w < n; w++) {
            size_t i = c->write_order_[w];
            bytes += c->key_ends_[i] - cache_key_start(c, i);
        }
        keys.data.ptr = xmalloc(bytes);
        keys.data.len = 0;
        keys.ends.ptr = xmalloc(n * sizeof(uint32_t));
        for (size_t w = 0; w < n; w++) {
            size_t i = c->write_order_[w], start = cache_key_start(c, i), len = c->key_ends_[i] - start;
            if (len) memcpy(keys.data.ptr + keys.data.len, c->keys_.ptr + start, len);
            keys.data.len += len;
            keys.ends.ptr[w] = (uint32_t)keys.data.len;
        }
    }
    size_t bytes = 0;
    for (size_t w = 0; w < n; w++) bytes += c->slots_[c->write_order_[w]].val_len;
    arkflow_plugin_types_column_t values = {{xmalloc(bytes), 0}, {xmalloc(n * sizeof(uint32_t)), n}, {NULL, 0}};
    for (size_t w = 0; w < n; w++) {
        ak_cache_slot_ *sl = &c->slots_[c->write_order_[w]];
        if (sl->val_len) memcpy(values.data.ptr + values.data.len, c->vals_.ptr + sl->val_start, sl->val_len);
        values.data.len += sl->val_len;
        values.ends.ptr[w] = (uint32_t)values.data.len;
        sl->dirty = false;
    }
    c->writes = 0;
    ak_state_error se;
    bool ok = arkflow_plugin_state_method_store_put_column(borrow(s), &keys, &values, &se);
    if (!in_order) {
        free(keys.data.ptr);
        free(keys.ends.ptr);
    }
    free(values.data.ptr);
    free(values.ends.ptr);
    return ok ? true : state_fail(&se, err);
}

void ak_cache_free(ak_cache *c) {
    ak_buf_free(&c->keys_);
    ak_buf_free(&c->vals_);
    free(c->key_ends_);
    free(c->slots_);
    free(c->table_);
    free(c->write_order_);
    free(c->seq_);
    memset(c, 0, sizeof *c);
}

/* ================================== log and metrics ================================= */

void ak_log(ak_log_level level, const char *message) {
    plugin_string_t m = {(uint8_t *)message, strlen(message)};
    arkflow_plugin_log_log(level, &m);
}

void ak_logf(ak_log_level level, const char *fmt, ...) {
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    ak_log(level, tmp);
}

void ak_metric_counter_add(const char *name, uint64_t delta) {
    plugin_string_t n = {(uint8_t *)name, strlen(name)};
    arkflow_plugin_metrics_counter_add(&n, delta);
}

void ak_metric_gauge_set(const char *name, double value) {
    plugin_string_t n = {(uint8_t *)name, strlen(name)};
    arkflow_plugin_metrics_gauge_set(&n, value);
}

void ak_metric_histogram_record(const char *name, double value) {
    plugin_string_t n = {(uint8_t *)name, strlen(name)};
    arkflow_plugin_metrics_histogram_record(&n, value);
}

/* ================================== the WIT exports ================================= */

static bool g_initialized;
static ak_config g_config;

static ak_error not_initialized(void) {
    return ak_internal("not-initialized", "the host called the plugin before a successful init");
}

__attribute__((weak)) bool ak_on_checkpoint(const ak_checkpoint_context *ctx, ak_error *err) {
    (void)ctx;
    (void)err;
    return true;
}

void exports_arkflow_plugin_processor_describe(exports_arkflow_plugin_processor_info_t *ret) {
    plugin_string_dup(&ret->name, ak_plugin.name);
    plugin_string_dup(&ret->version, ak_plugin.version);
    plugin_string_dup(&ret->abi, AK_ABI_VERSION);
    size_t n = 0, m = 0;
    while (ak_plugin.state_stores && ak_plugin.state_stores[n]) n++;
    while (ak_plugin.state_formats && ak_plugin.state_formats[m].store) m++;
    ret->state_stores.len = n;
    ret->state_stores.ptr = n ? xmalloc(n * sizeof(plugin_string_t)) : NULL;
    for (size_t i = 0; i < n; i++) plugin_string_dup(&ret->state_stores.ptr[i], ak_plugin.state_stores[i]);
    ret->state_formats.len = m;
    ret->state_formats.ptr = m ? xmalloc(m * sizeof(arkflow_plugin_types_store_format_t)) : NULL;
    for (size_t i = 0; i < m; i++) {
        plugin_string_dup(&ret->state_formats.ptr[i].store, ak_plugin.state_formats[i].store);
        ret->state_formats.ptr[i].format = ak_plugin.state_formats[i].format;
    }
    ret->key_by.is_some = ak_plugin.key_by != NULL;
    if (ak_plugin.key_by) plugin_string_dup(&ret->key_by.val, ak_plugin.key_by);
}

static char *cstr(plugin_string_t s) { return cstr_n(s.ptr, s.len); }

static void config_free(ak_config *c) {
    for (size_t i = 0; i < c->len; i++) {
        free((char *)c->keys[i]);
        free((char *)c->values[i]);
    }
    free(c->keys);
    free(c->values);
    memset(c, 0, sizeof *c);
}

bool exports_arkflow_plugin_processor_init(plugin_list_tuple2_string_string_t *config,
                                           exports_arkflow_plugin_processor_error_t *err) {
    config_free(&g_config);
    g_initialized = false;
    g_config.len = config->len;
    g_config.keys = xmalloc(config->len * sizeof(char *));
    g_config.values = xmalloc(config->len * sizeof(char *));
    for (size_t i = 0; i < config->len; i++) {
        g_config.keys[i] = cstr(config->ptr[i].f0);
        g_config.values[i] = cstr(config->ptr[i].f1);
    }
    plugin_list_tuple2_string_string_free(config);
    g_initialized = ak_init(&g_config, err);
    return g_initialized;
}

static void record_out_free(ak_record_out *r) {
    if (r->key.is_some) ak_bytes_free(&r->key.val);
    if (r->value.is_some) ak_bytes_free(&r->value.val);
    for (size_t i = 0; i < r->headers.len; i++) {
        plugin_string_free(&r->headers.ptr[i].key);
        ak_bytes_free(&r->headers.ptr[i].value);
    }
    free(r->headers.ptr);
    if (r->output.is_some) plugin_string_free(&r->output.val);
}

static void outcome_free(ak_outcome *o) {
    if (o->tag == AK_OUTCOME_EMIT) {
        for (size_t j = 0; j < o->val.emit.len; j++) record_out_free(&o->val.emit.ptr[j]);
        free(o->val.emit.ptr);
    } else if (o->tag == AK_OUTCOME_FAIL) {
        ak_error_free(&o->val.fail);
    }
}

/* Settles a call's outcomes: on failure frees them and returns false; else fills the unset ones
 * with fail(internal, "no-outcome"), packs everything into *ret (headers, output names and
 * errors move there, and the span buffer when the values can be sent as they lie in it) and
 * frees the rest. */
static bool settle(bool ok, ak_outcome *outs, size_t n, ak_buf *spans, arkflow_plugin_types_outcomes_t *ret) {
    if (!ok) {
        for (size_t i = 0; outs && i < n; i++)
            if (outs[i].tag != AK_OUTCOME_UNSET) outcome_free(&outs[i]);
        free(outs);
        return false;
    }
    size_t m = 0, bytes = 0, key_bytes = 0, keys = 0, ts = 0, hs = 0, routes = 0, fails = 0;
    /* direct: every emitted value is a span and they lie back to back in input order, so the
     * span buffer itself becomes the reply's value data (no copy). */
    bool one_each = true, direct = spans != NULL;
    for (size_t i = 0; i < n; i++) {
        ak_outcome *o = &outs[i];
        if (o->tag == AK_OUTCOME_UNSET) ak_outcome_fail(o, ak_internal("no-outcome", "the plugin set no outcome for this record"));
        if (o->tag == AK_OUTCOME_FAIL) fails++;
        if (o->tag == AK_OUTCOME_EMIT_SPAN_) {
            if (o->val.span_.start != bytes) direct = false;
            m++;
            bytes += o->val.span_.len;
            continue;
        }
        if (o->tag != AK_OUTCOME_EMIT || o->val.emit.len != 1) one_each = false;
        if (o->tag != AK_OUTCOME_EMIT) continue;
        direct = false;
        for (size_t j = 0; j < o->val.emit.len; j++) {
            ak_record_out *r = &o->val.emit.ptr[j];
            m++;
            if (r->value.is_some) bytes += r->value.val.len;
            if (r->key.is_some) keys++, key_bytes += r->key.val.len;
            ts += r->timestamp_ms.is_some;
            hs += r->headers.len;
            routes += r->output.is_some;
        }
    }
    if (direct && spans->len != bytes) direct = false; /* bytes of an ak_emit_begin left unended */
    memset(ret, 0, sizeof *ret);
    colbuf values, kcol;
    if (direct) {
        memset(&values, 0, sizeof values);
        values.ends = m ? xmalloc(m * sizeof(uint32_t)) : NULL;
    } else {
        colbuf_init(&values, m, bytes);
    }
    if (keys) colbuf_init(&kcol, m, key_bytes);
    /* (none when m == 0: the generated glue frees only non-empty lists) */
    ret->sources.ptr = one_each || !m ? NULL : xmalloc(m * sizeof(uint32_t));
    ret->sources.len = one_each ? 0 : m;
    ret->timestamps.ptr = ts ? xmalloc(ts * sizeof *ret->timestamps.ptr) : NULL;
    ret->headers.ptr = hs ? xmalloc(hs * sizeof *ret->headers.ptr) : NULL;
    ret->outputs.ptr = routes ? xmalloc(routes * sizeof *ret->outputs.ptr) : NULL;
    ret->failed.ptr = fails ? xmalloc(fails * sizeof *ret->failed.ptr) : NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        ak_outcome *o = &outs[i];
        if (o->tag == AK_OUTCOME_FAIL) {
            ret->failed.ptr[ret->failed.len].f0 = (uint32_t)i;
            ret->failed.ptr[ret->failed.len++].f1 = o->val.fail;
            continue;
        }
        if (o->tag == AK_OUTCOME_EMIT_SPAN_) {
            if (direct) {
                values.ends[values.len++] = o->val.span_.start + o->val.span_.len;
            } else {
                ak_opt_bytes v = {.is_some = true, .val = ak_bytes_of(spans->ptr + o->val.span_.start, o->val.span_.len)};
                colbuf_push(&values, &v);
            }
            if (keys) {
                ak_opt_bytes none = {0};
                colbuf_push(&kcol, &none);
            }
            if (!one_each) ret->sources.ptr[k] = (uint32_t)i;
            k++;
            continue;
        }
        if (o->tag != AK_OUTCOME_EMIT) continue;
        for (size_t j = 0; j < o->val.emit.len; j++, k++) {
            ak_record_out *r = &o->val.emit.ptr[j];
            colbuf_push(&values, &r->value);
            if (keys) colbuf_push(&kcol, &r->key);
            if (!one_each) ret->sources.ptr[k] = (uint32_t)i;
            if (r->timestamp_ms.is_some) {
                ret->timestamps.ptr[ret->timestamps.len].f0 = (uint32_t)k;
                ret->timestamps.ptr[ret->timestamps.len++].f1 = r->timestamp_ms.val;
            }
            for (size_t h = 0; h < r->headers.len; h++) {
                ret->headers.ptr[ret->headers.len].f0 = (uint32_t)k;
                ret->headers.ptr[ret->headers.len++].f1 = r->headers.ptr[h];
            }
            r->headers.len = 0; /* moved */
            if (r->output.is_some) {
                ret->outputs.ptr[ret->outputs.len].f0 = (uint32_t)k;
                ret->outputs.ptr[ret->outputs.len++].f1 = r->output.val;
                r->output.is_some = false; /* moved */
            }
            record_out_free(r);
        }
        free(o->val.emit.ptr);
    }
    if (direct) {
        ret->values.data = ak_buf_take(spans); /* moved: the generated glue frees it */
        ret->values.ends.ptr = values.ends;
        ret->values.ends.len = values.len;
    } else {
        ret->values = colbuf_finish(&values);
    }
    if (keys) ret->keys = colbuf_finish(&kcol);
    free(outs);
    return true;
}

static ak_outcome *unset_outcomes(size_t n) {
    ak_outcome *outs = n ? xmalloc(n * sizeof *outs) : NULL;
    for (size_t i = 0; i < n; i++) outs[i].tag = AK_OUTCOME_UNSET;
    return outs;
}

bool exports_arkflow_plugin_processor_process_batch(exports_arkflow_plugin_processor_batch_context_t *ctx,
                                                    exports_arkflow_plugin_processor_batch_t *records,
                                                    exports_arkflow_plugin_processor_outcomes_t *ret,
                                                    exports_arkflow_plugin_processor_error_t *err) {
    size_t n = records->timestamps.len;
    bool ok = false;
    ak_header *headers;
    ak_batch b = {ctx, record_views(records, n, &headers), NULL, n, NULL, {0}, 0, NULL};
    if (!g_initialized) {
        *err = not_initialized();
    } else {
        b.outcomes = unset_outcomes(n);
        ok = ak_process_batch(&b, err);
    }
    if (b.keys_) {
        ak_key *keys = b.keys_;
        for (size_t i = 0; i < n; i++) ak_key_free(&keys[i]);
        free(keys);
    }
    fields_free(b.fields_);
    free(b.records);
    free(headers);
    exports_arkflow_plugin_processor_batch_free(records);
    bool settled = settle(ok, b.outcomes, n, &b.values_, ret);
    ak_buf_free(&b.values_);
    return settled;
}

bool exports_arkflow_plugin_processor_on_checkpoint(exports_arkflow_plugin_processor_checkpoint_context_t *ctx,
                                                    exports_arkflow_plugin_processor_error_t *err) {
    if (!g_initialized) {
        *err = not_initialized();
        return false;
    }
    return ak_on_checkpoint(ctx, err);
}

/* ====================================== timers ====================================== */

bool ak_timer_register(ak_bytes key, int64_t time_ms, ak_time_domain domain, ak_error *err) {
    ak_state_error se;
    if (!arkflow_plugin_timers_register_timer(&key, time_ms, domain, &se)) return state_fail(&se, err);
    return true;
}

bool ak_timer_delete(ak_bytes key, int64_t time_ms, ak_time_domain domain, bool *was_registered, ak_error *err) {
    ak_state_error se;
    bool present;
    if (!arkflow_plugin_timers_delete_timer(&key, time_ms, domain, &present, &se)) return state_fail(&se, err);
    if (was_registered) *was_registered = present;
    return true;
}

int64_t ak_watermark(void) { return arkflow_plugin_timers_watermark(); }

int64_t ak_now(void) { return arkflow_plugin_timers_now(); }

__attribute__((weak)) bool ak_on_timers(ak_timers *timers, ak_error *err) {
    (void)timers;
    *err = ak_internal("no-timer-handler", "the plugin registered timers but defines no ak_on_timers");
    return false;
}

bool exports_arkflow_plugin_timer_handler_on_timers(exports_arkflow_plugin_timer_handler_timer_context_t *ctx,
                                                    exports_arkflow_plugin_timer_handler_list_timer_t *fired,
                                                    exports_arkflow_plugin_timer_handler_outcomes_t *ret,
                                                    exports_arkflow_plugin_timer_handler_error_t *err) {
    size_t n = fired->len;
    bool ok = false;
    ak_timers t = {ctx, fired->ptr, NULL, n};
    if (!g_initialized) {
        *err = not_initialized();
    } else {
        t.outcomes = unset_outcomes(n);
        ok = ak_on_timers(&t, err);
    }
    exports_arkflow_plugin_timer_handler_list_timer_free(fired);
    return settle(ok, t.outcomes, n, NULL, ret);
}
