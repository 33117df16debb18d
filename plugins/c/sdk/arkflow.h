/*
 * arkflow.h — the C SDK for ArkFlow processor plugins (WIT package arkflow:plugin@0.2.0).
 *
 * A plugin is one or more .c files that include this header and define:
 *
 *   const ak_plugin_info ak_plugin = { .name = "...", .version = "...", ... };
 *   bool ak_init(const ak_config *config, ak_error *err);
 *   bool ak_process_batch(ak_batch *batch, ak_error *err);
 *   bool ak_on_checkpoint(const ak_checkpoint_context *ctx, ak_error *err);   (optional)
 *   bool ak_on_timers(ak_timers *timers, ak_error *err);                       (with timers)
 *
 * The SDK (arkflow.c) implements the WIT exports describe / init / process-batch / on-checkpoint
 * and on-timers on top of the bindings wit-bindgen generates from wit/ (plugin.h, included
 * below; the world `timed-plugin`, generated under the name `plugin`), and wraps the imports:
 * The batch crosses the boundary in 0.2.0's columnar form (a few buffers, not a list per record);
 * the SDK shows it as an array of ak_record_in views into those buffers (no copy per record) and
 * packs the outcomes into one buffer of emitted values on return.
 * state (ak_store_*), timers (ak_timer_*, ak_watermark, ak_now), log (ak_log*), metrics
 * (ak_metric_*), typed fields (ak_fields_declare, ak_batch_fields). A plugin that never calls
 * ak_timer_* does not import `timers` (the linker drops the unused import), so it is a plain
 * plugin to the host; one that never calls ak_fields_declare / ak_batch_fields does not import
 * `fields`.
 *
 * Conventions:
 *  - Fallible calls return bool (true = ok) and fill `ak_error *err` on failure. An ak_error owns
 *    heap strings: hand it to ak_outcome_fail / return it from a callback (the SDK and the
 *    generated code free it), or free it with ak_error_free.
 *  - ak_bytes is {ptr, len}: a byte string. Arguments are borrowed; results documented as owned
 *    must be freed (ak_bytes_free and the *_free functions named at each call).
 *  - Everything handed to ak_process_batch (records, their keys/values) lives until it returns.
 */
#ifndef ARKFLOW_H
#define ARKFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plugin.h" /* generated from wit/ (world timed-plugin, named plugin) at build time */

#ifdef __cplusplus
extern "C" {
#endif

#define AK_ABI_VERSION "0.2.0"
/* This SDK's version: the WIT package version it targets (a project's sdk/ copy is pinned to it). */
#define ARKFLOW_SDK_VERSION "0.2.0"

/* ---- the generated WIT types, under short names ------------------------------------------ */

typedef plugin_list_u8_t ak_bytes;                          /* list<u8> */
typedef plugin_option_list_u8_t ak_opt_bytes;               /* option<list<u8>> */
typedef arkflow_plugin_types_error_t ak_error;              /* record error */
typedef arkflow_plugin_types_error_class_t ak_error_class;  /* enum error-class */
typedef arkflow_plugin_types_header_t ak_header;

/* A growable byte buffer; zero-initialise ({0}) before use. */
typedef struct {
    uint8_t *ptr;
    size_t len, cap;
} ak_buf;

/* ---- the SDK's record types (0.2.0 sends columns; these are per-record views of them) ------ */

typedef struct {
    ak_header *ptr;
    size_t len;
} ak_header_list;
typedef struct {
    bool is_some;
    int64_t val;
} ak_opt_i64;
typedef struct {
    bool is_some;
    plugin_string_t val;
} ak_opt_string;

/* A record handed to the plugin: key, value and headers point into the batch's buffers (valid
 * until ak_process_batch returns; do not free them). */
typedef struct {
    ak_opt_bytes key;   /* absent for unkeyed records */
    ak_opt_bytes value; /* absent for tombstones */
    ak_header_list headers;
    int64_t timestamp_ms;
    uint32_t partition;
    uint64_t offset;
} ak_record_in;

/* A record the plugin emits; it owns its buffers (the SDK frees them). Absent key / timestamp:
 * the input's; present output: the stream's named output of that name. */
typedef struct {
    ak_opt_bytes key;
    ak_opt_bytes value;
    ak_header_list headers;
    ak_opt_i64 timestamp_ms;
    ak_opt_string output;
} ak_record_out;

typedef struct {
    ak_record_out *ptr;
    size_t len;
} ak_record_out_list;

/* The verdict on one input: emit (records), drop, or fail (error). Set with ak_outcome_*. */
typedef struct {
    uint8_t tag;
    union {
        ak_record_out_list emit;
        ak_error fail;
        struct {
            uint32_t start, len;
        } span_; /* SDK-internal: a value in the batch's value buffer (ak_emit_begin/_end) */
    } val;
} ak_outcome;
#define AK_OUTCOME_EMIT 0
#define AK_OUTCOME_DROP 1
#define AK_OUTCOME_FAIL 2
#define AK_OUTCOME_EMIT_SPAN_ 3
typedef arkflow_plugin_types_batch_context_t ak_batch_context;
typedef arkflow_plugin_types_checkpoint_context_t ak_checkpoint_context;
typedef arkflow_plugin_types_value_format_t ak_value_format;
typedef arkflow_plugin_state_own_store_t ak_store;          /* resource store (owned handle) */
typedef arkflow_plugin_state_state_error_t ak_state_error;  /* variant state-error */
typedef arkflow_plugin_state_scan_page_t ak_scan_page;      /* record scan-page */
typedef plugin_list_option_list_u8_t ak_opt_bytes_list;     /* result of get-many */
typedef arkflow_plugin_log_level_t ak_log_level;
typedef arkflow_plugin_types_timer_t ak_timer;              /* record timer */
typedef arkflow_plugin_types_timer_context_t ak_timer_context;
typedef arkflow_plugin_types_time_domain_t ak_time_domain;

#define AK_INVALID_INPUT ARKFLOW_PLUGIN_TYPES_ERROR_CLASS_INVALID_INPUT
#define AK_CONFIG        ARKFLOW_PLUGIN_TYPES_ERROR_CLASS_CONFIG
#define AK_STATE         ARKFLOW_PLUGIN_TYPES_ERROR_CLASS_STATE
#define AK_RETRIABLE     ARKFLOW_PLUGIN_TYPES_ERROR_CLASS_RETRIABLE
#define AK_INTERNAL      ARKFLOW_PLUGIN_TYPES_ERROR_CLASS_INTERNAL

#define AK_FORMAT_BYTES ARKFLOW_PLUGIN_TYPES_VALUE_FORMAT_BYTES
#define AK_FORMAT_UTF8  ARKFLOW_PLUGIN_TYPES_VALUE_FORMAT_UTF8
#define AK_FORMAT_JSON  ARKFLOW_PLUGIN_TYPES_VALUE_FORMAT_JSON
#define AK_FORMAT_I64   ARKFLOW_PLUGIN_TYPES_VALUE_FORMAT_I64

#define AK_EVENT_TIME      ARKFLOW_PLUGIN_TYPES_TIME_DOMAIN_EVENT
#define AK_PROCESSING_TIME ARKFLOW_PLUGIN_TYPES_TIME_DOMAIN_PROCESSING

#define AK_TRACE ARKFLOW_PLUGIN_LOG_LEVEL_TRACE
#define AK_DEBUG ARKFLOW_PLUGIN_LOG_LEVEL_DEBUG
#define AK_INFO  ARKFLOW_PLUGIN_LOG_LEVEL_INFO
#define AK_WARN  ARKFLOW_PLUGIN_LOG_LEVEL_WARN
#define AK_ERROR ARKFLOW_PLUGIN_LOG_LEVEL_ERROR

/* ---- what the plugin defines -------------------------------------------------------------- */

typedef struct {
    const char *store;
    ak_value_format format;
} ak_store_format;

/* describe(): name, version, the stores the plugin opens, their value formats. Lists end with a
 * NULL entry ({NULL} for formats); both may be NULL. abi is always AK_ABI_VERSION. key_by: the
 * key the plugin's state is grouped by when it is not the record key (a top-level field of the
 * JSON value, or "record_key"): the host routes every record of one value of it to one key group,
 * as a YAML `key_by:` would; NULL when the plugin needs no key of its own. */
typedef struct {
    const char *name;
    const char *version;
    const char *const *state_stores;
    const ak_store_format *state_formats;
    const char *key_by;
} ak_plugin_info;

/* The YAML `config:` map handed to init (values as strings, nested YAML as JSON text). */
typedef struct {
    size_t len;
    const char **keys;   /* NUL-terminated copies, valid for the instance's lifetime */
    const char **values;
} ak_config;

/* One process-batch call. outcomes[i] is the verdict on records[i]; set each one with an
 * ak_outcome_* function, or emit a value with ak_emit_begin/ak_emit_end. An outcome left unset
 * becomes fail(internal, "no-outcome"). */
typedef struct {
    const ak_batch_context *ctx;
    ak_record_in *records;
    ak_outcome *outcomes;
    size_t len;
    void *keys_;    /* SDK-internal: the ak_key array of ak_batch_keys */
    ak_buf values_; /* SDK-internal: the values of ak_emit_begin/_end, back to back */
    size_t mark_;
    void *fields_;  /* SDK-internal: the ak_fields of ak_batch_fields */
} ak_batch;

/* One on-timers call: the timers of one key group that are due, in time order. outcomes[i] is
 * the verdict on fired[i] (ak_outcome_emit*, _drop, _fail as for records; an emitted record
 * without a key is keyed by the timer's key). Unset outcomes become fail(internal, "no-outcome"). */
typedef struct {
    const ak_timer_context *ctx;
    const ak_timer *fired;
    ak_outcome *outcomes;
    size_t len;
} ak_timers;

extern const ak_plugin_info ak_plugin;
bool ak_init(const ak_config *config, ak_error *err);
bool ak_process_batch(ak_batch *batch, ak_error *err);
/* Default (weak) implementation: returns true. */
bool ak_on_checkpoint(const ak_checkpoint_context *ctx, ak_error *err);
/* Default (weak) implementation: fails with internal "no-timer-handler". */
bool ak_on_timers(ak_timers *timers, ak_error *err);

/* ---- bytes and buffers -------------------------------------------------------------------- */

/* A view of a NUL-terminated string / of ptr+len (no copy). */
ak_bytes ak_str(const char *s);
static inline ak_bytes ak_bytes_of(const void *ptr, size_t len) {
    ak_bytes b = {(uint8_t *)ptr, len};
    return b;
}
bool ak_bytes_eq(ak_bytes a, ak_bytes b);
ak_bytes ak_bytes_dup(ak_bytes b); /* owned copy */
void ak_bytes_free(ak_bytes *b);

/* ak_buf (a growable byte buffer) is declared with the types above. */
void ak_buf_reserve(ak_buf *b, size_t extra);
void ak_buf_put(ak_buf *b, const void *data, size_t len);
void ak_buf_putb(ak_buf *b, ak_bytes data);
void ak_buf_puts(ak_buf *b, const char *s);
void ak_buf_putc(ak_buf *b, char c);
void ak_buf_put_i64(ak_buf *b, int64_t v); /* decimal */
/* `data` rendered as UTF-8 (invalid sequences -> U+FFFD, like Rust's from_utf8_lossy) and
 * JSON-escaped, without quotes: " \ \n \r \t \b \f as two-char escapes, other controls \u00xx. */
void ak_buf_put_json_escaped(ak_buf *b, ak_bytes data);
ak_bytes ak_buf_take(ak_buf *b); /* the contents as owned ak_bytes; the buffer is reset */
void ak_buf_free(ak_buf *b);

/* ---- errors ------------------------------------------------------------------------------- */

ak_error ak_error_new(ak_error_class cls, const char *code, const char *message);
ak_error ak_errorf(ak_error_class cls, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with a {ptr, len} message (copied), e.g. a reason the host returned. */
ak_error ak_error_newb(ak_error_class cls, const char *code, ak_bytes message);
#define ak_invalid_input(code, msg) ak_error_new(AK_INVALID_INPUT, (code), (msg))
#define ak_config_error(code, msg)  ak_error_new(AK_CONFIG, (code), (msg))
#define ak_retriable(code, msg)     ak_error_new(AK_RETRIABLE, (code), (msg))
#define ak_internal(code, msg)      ak_error_new(AK_INTERNAL, (code), (msg))
/* A failed state call: class state, code = the variant's WIT name (e.g. "quota-exceeded"). */
ak_error ak_error_from_state(const ak_state_error *e);
ak_error ak_error_clone(const ak_error *e);
/* Moves the error out of *e (left empty, so freeing *e afterwards is a no-op). */
static inline ak_error ak_error_take(ak_error *e) {
    ak_error r = *e;
    e->code.ptr = e->message.ptr = NULL;
    e->code.len = e->message.len = 0;
    return r;
}
void ak_error_free(ak_error *e);

/* ---- outcomes ----------------------------------------------------------------------------- */

/* The fastest emit: append the value of record i's output to the buffer ak_emit_begin returns,
 * then call ak_emit_end(batch, i). The value lands in the batch's one value buffer (nothing
 * allocated per record); key and timestamp are the input's. One begin/end pair at a time. */
ak_buf *ak_emit_begin(ak_batch *b);
void ak_emit_end(ak_batch *b, size_t i);
/* Emit one record whose value is `value` (ownership moves: the buffer is reset); key and
 * timestamp absent, so the host keeps the input's. */
void ak_outcome_emit_value(ak_outcome *o, ak_buf *value);
/* Emit one prepared record (ownership of its fields moves). */
void ak_outcome_emit(ak_outcome *o, ak_record_out record);
/* Re-emit the input record unchanged (value and headers copied; the key is the input's). */
void ak_outcome_pass(ak_outcome *o, ak_record_in *record);
void ak_outcome_drop(ak_outcome *o);
void ak_outcome_fail(ak_outcome *o, ak_error err);
/* A record-out with this value (copied); no key/timestamp/headers/output. */
ak_record_out ak_record_out_new(ak_bytes value);

/* ---- config ------------------------------------------------------------------------------- */

const char *ak_config_get(const ak_config *c, const char *key); /* last value wins; NULL if unset */
const char *ak_config_get_or(const ak_config *c, const char *key, const char *dflt);
bool ak_config_require(const ak_config *c, const char *key, const char **out, ak_error *err);      /* missing-config */
bool ak_config_get_i64(const ak_config *c, const char *key, int64_t dflt, int64_t *out, ak_error *err); /* bad-config */

/* ---- JSON --------------------------------------------------------------------------------- */

typedef enum { AK_JSON_STRING, AK_JSON_NUMBER, AK_JSON_BOOL, AK_JSON_NULL, AK_JSON_OBJECT, AK_JSON_ARRAY } ak_json_kind;

typedef struct {
    ak_json_kind kind;
    /* STRING: the unescaped contents; NUMBER/OBJECT/ARRAY: the raw text as written;
     * BOOL: "true"/"false"; NULL: "null". Points into the document or into `owned_`. */
    ak_bytes text;
    uint8_t *owned_;
} ak_json_value;

/* Validates the WHOLE document (RFC 8259, UTF-8, nesting <= 128) and finds its top-level member
 * `name` (first one wins). Returns 1 found (*out set; free with ak_json_value_free), 0 absent or
 * not an object, -1 invalid JSON (*err = invalid-input "bad-json"). */
int ak_json_field(ak_bytes doc, const char *name, ak_json_value *out, ak_error *err);
bool ak_json_validate(ak_bytes doc, ak_error *err);
/* A string's contents or a number's text (what can serve as a key); false otherwise. */
bool ak_json_as_key(const ak_json_value *v, ak_bytes *out);
void ak_json_value_free(ak_json_value *v);

/* ---- record helpers ----------------------------------------------------------------------- */

/* The key of a record: its record key, else (when key_field != NULL) the JSON string/number
 * member `key_field` of its value. ok=false: err holds invalid-input "no-key" (or "bad-json"). */
typedef struct {
    bool ok;
    ak_bytes bytes; /* the key (borrowed from the record, or owned_) */
    ak_error err;
    uint8_t *owned_;
} ak_key;
bool ak_record_key(const ak_record_in *r, const char *key_field, ak_key *out);
void ak_key_free(ak_key *k);
/* ak_record_key for every record of the batch; the array lives until process_batch returns. */
ak_key *ak_batch_keys(ak_batch *batch, const char *key_field);
/* The first header named `name`, or NULL. */
const ak_bytes *ak_record_header(const ak_record_in *r, const char *name);

/* ---- typed fields: WIT interface `fields` -------------------------------------------------- */

/* The host decodes the top-level JSON fields a plugin declares, for every record of a batch, into
 * typed columns: the guest parses no JSON. Declare the fields once, in ak_init:
 *
 *   static const ak_field fields[] = {{"user", AK_FIELD_UTF8}, {"n", AK_FIELD_I64}};
 *   if (!ak_fields_declare(fields, 2, err)) return false;
 *
 * then, in ak_process_batch, get the batch's columns once and read them by record index:
 *
 *   const ak_fields *f = ak_batch_fields(batch, err);
 *   ak_strs user;
 *   if (!f || !ak_fields_str(f, "user", &user, err)) return false;
 *   for (size_t i = 0; i < batch->len; i++) {
 *       ak_bytes u, why;
 *       if (ak_fields_mismatch(f, i, &why)) ... record i: not an object, or a field of another type
 *       else if (ak_strs_get(&user, i, &u)) ... record i's "user" is the string u
 *       else ... record i has no "user" (missing, null, or no value)
 *   }
 *
 * Columns are views of the buffers the host's reply was lifted into (nothing copied, nothing
 * allocated per record); they live until ak_process_batch returns. A getter returns false
 * ("absent") where record i lacks the field, holds null, has no value, or is mismatched. */

typedef arkflow_plugin_fields_field_type_t ak_field_type; /* enum field-type */
#define AK_FIELD_BOOL ARKFLOW_PLUGIN_FIELDS_FIELD_TYPE_BOOLEAN /* true / false */
#define AK_FIELD_I64  ARKFLOW_PLUGIN_FIELDS_FIELD_TYPE_INT64   /* an integer (no fraction/exponent) in range */
#define AK_FIELD_F64  ARKFLOW_PLUGIN_FIELDS_FIELD_TYPE_FLOAT64 /* any number, as the nearest double */
#define AK_FIELD_UTF8 ARKFLOW_PLUGIN_FIELDS_FIELD_TYPE_UTF8    /* a string (escapes decoded) */

/* One field to read: a top-level member name of the records' JSON objects, and its type. */
typedef struct {
    const char *name;
    ak_field_type type;
} ak_field;

/* declare: the fields ak_batch_fields returns, replacing an earlier declaration (call it in
 * ak_init; the declaration must not change while a batch's ak_fields is in use). The host checks
 * the list (at most 64 fields, names non-empty and unique); its error becomes config "bad-fields". */
bool ak_fields_declare(const ak_field *fields, size_t n, ak_error *err);

/* A record whose value did not fit the declaration: f0 = its index, f1 = the host's reason
 * (names the field; not NUL-terminated). */
typedef plugin_tuple2_u32_string_t ak_mismatch;

/* The declared fields of one batch (ak_batch_fields). */
typedef struct {
    size_t len;                    /* records: the batch's len */
    const ak_mismatch *mismatched; /* the records whose value is not a JSON object or has a */
    size_t mismatched_len;         /* declared field of another type, by ascending index */
    arkflow_plugin_fields_decoded_t raw_; /* SDK-internal: the host's reply */
} ak_fields;

/* columns: the declared fields of this batch's records, fetched from the host on the first call
 * (one host call per batch; later calls return the same). NULL on failure: *err is internal
 * "fields" with the host's reason (e.g. nothing declared). Freed when ak_process_batch returns. */
const ak_fields *ak_batch_fields(ak_batch *batch, ak_error *err);

/* Whether record i is in f->mismatched; *reason (may be NULL) gets the host's reason (borrowed). */
bool ak_fields_mismatch(const ak_fields *f, size_t i, ak_bytes *reason);

/* Typed column views, by field name. Each getter returns false where record i has no value of the
 * field (its `valid` bit is clear, or i >= len) and otherwise sets *out. */
typedef struct {
    const uint8_t *valid; /* bitmap: bit i % 8 of byte i / 8 */
    const int64_t *values;
    size_t len;
} ak_i64s;
typedef struct {
    const uint8_t *valid;
    const double *values;
    size_t len;
} ak_f64s;
typedef struct {
    const uint8_t *valid;
    const uint8_t *values; /* bitmap */
    size_t len;
} ak_bools;
typedef struct {
    const uint8_t *valid;
    const uint8_t *data;   /* Arrow layout: item i is data[ends[i-1] .. ends[i]] (ends[-1] = 0) */
    const uint32_t *ends;
    size_t len, data_len;
} ak_strs;

/* The column of the field `name`; false when it was not declared with that type: *err is
 * internal "undeclared-field" naming it. */
bool ak_fields_i64(const ak_fields *f, const char *name, ak_i64s *out, ak_error *err);
bool ak_fields_f64(const ak_fields *f, const char *name, ak_f64s *out, ak_error *err);
bool ak_fields_bool(const ak_fields *f, const char *name, ak_bools *out, ak_error *err);
bool ak_fields_str(const ak_fields *f, const char *name, ak_strs *out, ak_error *err);

static inline bool ak_bit_(const uint8_t *bits, size_t i) { return (bits[i >> 3] >> (i & 7)) & 1; }
static inline bool ak_i64s_get(const ak_i64s *c, size_t i, int64_t *out) {
    if (i >= c->len || !ak_bit_(c->valid, i)) return false;
    *out = c->values[i];
    return true;
}
static inline bool ak_f64s_get(const ak_f64s *c, size_t i, double *out) {
    if (i >= c->len || !ak_bit_(c->valid, i)) return false;
    *out = c->values[i];
    return true;
}
static inline bool ak_bools_get(const ak_bools *c, size_t i, bool *out) {
    if (i >= c->len || !ak_bit_(c->valid, i)) return false;
    *out = ak_bit_(c->values, i);
    return true;
}
/* *out: the UTF-8 text (borrowed, not NUL-terminated). */
static inline bool ak_strs_get(const ak_strs *c, size_t i, ak_bytes *out) {
    if (i >= c->len || !ak_bit_(c->valid, i)) return false;
    uint32_t start = i ? c->ends[i - 1] : 0, end = c->ends[i];
    if (end < start || end > c->data_len) return false;
    *out = ak_bytes_of(c->data + start, end - start);
    return true;
}

/* ---- state: WIT resource `store` ---------------------------------------------------------- */

/* open (static): "default" or one of the stream's custom_keys; open in ak_init, keep forever. */
bool ak_store_open(const char *name, ak_store *out, ak_error *err);
/* get: *out is none when absent/expired; owned, free with plugin_option_list_u8_free. */
bool ak_store_get(ak_store s, ak_bytes key, ak_opt_bytes *out, ak_error *err);
bool ak_store_put(ak_store s, ak_bytes key, ak_bytes value, ak_error *err);
bool ak_store_delete(ak_store s, ak_bytes key, bool *was_present, ak_error *err);
/* get-many: one result per key, in order; owned, free with plugin_list_option_list_u8_free. */
bool ak_store_get_many(ak_store s, const ak_bytes *keys, size_t n, ak_opt_bytes_list *out, ak_error *err);
/* put-many: entries keys[i] -> values[i]. */
bool ak_store_put_many(ak_store s, const ak_bytes *keys, const ak_bytes *values, size_t n, ak_error *err);
bool ak_store_delete_many(ak_store s, const ak_bytes *keys, size_t n, ak_error *err);
/* increment: adds delta to the 8-byte LE counter at key (absent = 0), returns the new value. */
bool ak_store_increment(ak_store s, ak_bytes key, int64_t delta, int64_t *out, ak_error *err);
/* scan-prefix: start_after may be NULL; limit <= 1024; free *out with ak_scan_page_free. */
bool ak_store_scan_prefix(ak_store s, ak_bytes prefix, const ak_bytes *start_after, uint32_t limit,
                          ak_scan_page *out, ak_error *err);
void ak_scan_page_free(ak_scan_page *p);

/* The 8-byte little-endian i64 encoding of `increment`. */
void ak_encode_i64(int64_t v, uint8_t out[8]);
bool ak_decode_i64(ak_bytes b, int64_t *out); /* false unless exactly 8 bytes */

/* ---- per-batch state cache (one get-column, in-memory updates, one put-column) ------------ */

/* Nothing is allocated per key (like the Rust SDK's StateCache): keys live back to back in one
 * buffer, which is also the get-column request; values in another, initially the get-column
 * reply itself; an open-addressing table finds a key's slot. The fields are SDK-internal. */
typedef struct {
    uint64_t hash;
    uint32_t val_start, val_len; /* the value is vals_[val_start, +val_len); len ~0u = absent */
    bool dirty;
} ak_cache_slot_;

typedef struct {
    ak_buf keys_;            /* slot keys, back to back, in insertion order */
    uint32_t *key_ends_;     /* slot i's key ends at key_ends_[i] */
    ak_cache_slot_ *slots_;  /* in insertion order */
    size_t len, cap;
    ak_buf vals_;            /* values, back to back */
    uint32_t *table_;        /* open addressing: slot index + 1, 0 = empty */
    size_t table_cap;
    uint32_t *write_order_;  /* slots written, in first-write order */
    size_t writes, writes_cap;
    uint32_t *seq_;          /* the slot of each key loaded, in load order (duplicates too) */
    size_t seq_len_, cursor_; /* writes in that order find their slot without hashing */
} ak_cache;

/* Loads the distinct keys among keys[0..n) with one get-column (none when n == 0). Start from a
 * zeroed ak_cache ({0}); free it with ak_cache_free. */
bool ak_cache_load(ak_cache *c, ak_store s, const ak_bytes *keys, size_t n, ak_error *err);
/* The same for an ak_batch_keys array: the keys with ok=true. */
bool ak_cache_load_keys(ak_cache *c, ak_store s, const ak_key *keys, size_t n, ak_error *err);
/* The current value (NULL when absent or not loaded); valid until the next write to the cache
 * (put / put_i64 / increment of any key may move the value buffer), which may be a put of it. */
const uint8_t *ak_cache_get(const ak_cache *c, ak_bytes key, size_t *len);
void ak_cache_put(ak_cache *c, ak_bytes key, ak_bytes value);
/* *found=false when absent; not-a-counter (class state) when the value is not 8 bytes. */
bool ak_cache_get_i64(const ak_cache *c, ak_bytes key, bool *found, int64_t *v, ak_error *err);
void ak_cache_put_i64(ak_cache *c, ak_bytes key, int64_t v);
/* increment in the cache (absent = 0, wrapping; a present value is updated in place);
 * not-a-counter like the host's. */
bool ak_cache_increment(ak_cache *c, ak_bytes key, int64_t delta, int64_t *out, ak_error *err);
/* Writes every changed entry with one put-column (first-write order; no call when none). */
bool ak_cache_flush(ak_cache *c, ak_store s, ak_error *err);
void ak_cache_free(ak_cache *c);

/* ---- timers: WIT interface `timers` ------------------------------------------------------- */

/* register-timer: a timer for `key` at `time_ms` on `domain`'s clock (AK_EVENT_TIME: fires once
 * the watermark reaches it; AK_PROCESSING_TIME: once the wall clock has passed it), in the key
 * group of the current call; staged with the call's state writes. Fails (class state) with
 * "no-scope" outside process-batch / on-timers / on-checkpoint, or a quota code. */
bool ak_timer_register(ak_bytes key, int64_t time_ms, ak_time_domain domain, ak_error *err);
/* delete-timer: *was_registered (may be NULL) says whether it was registered. */
bool ak_timer_delete(ak_bytes key, int64_t time_ms, ak_time_domain domain, bool *was_registered, ak_error *err);
/* The stream's watermark (INT64_MIN before the first one); an event at or before it is late. */
int64_t ak_watermark(void);
/* The host's wall clock, milliseconds since the Unix epoch. */
int64_t ak_now(void);

/* ---- log and metrics ---------------------------------------------------------------------- */

void ak_log(ak_log_level level, const char *message);
void ak_logf(ak_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ak_metric_counter_add(const char *name, uint64_t delta);
void ak_metric_gauge_set(const char *name, double value);
void ak_metric_histogram_record(const char *name, double value);

#ifdef __cplusplus
}
#endif
#endif /* ARKFLOW_H */
