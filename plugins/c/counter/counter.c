/* counter: a per-key running count in state store "default" (same contract as plugins/counter).
 * Key: the record key, else the JSON string/number member `key_field` (config) of the value;
 * neither: fail invalid-input "no-key". Config `read`: `json` (the default) parses each value in
 * the guest for `key_field`; `fields` declares `key_field` as a utf8 field and reads it from the
 * host's typed column (ak_batch_fields): then only a string member is a key, and a value that is
 * not a JSON object or whose `key_field` holds another type fails invalid-input "bad-field" with
 * the host's reason. Emits {"key":"<key>","count":N} per record. One get-column and one
 * put-column per batch; counts are 8-byte little-endian i64s. */
#include "arkflow.h"

#include <stdlib.h>
#include <string.h>

const ak_plugin_info ak_plugin = {
    .name = "counter",
    .version = "0.1.0",
    .state_stores = (const char *const[]){"default", NULL},
    .state_formats = (const ak_store_format[]){{"default", AK_FORMAT_I64}, {NULL, 0}},
};

static ak_store store;
static const char *key_field; /* NULL when unset */
static bool typed;            /* read: fields (and key_field set) */

bool ak_init(const ak_config *config, ak_error *err) {
    key_field = ak_config_get(config, "key_field");
    const char *read = ak_config_get_or(config, "read", "json");
    if (strcmp(read, "json") == 0) typed = false;
    else if (strcmp(read, "fields") == 0) typed = true;
    else {
        ak_buf m = {0};
        ak_buf_puts(&m, "config `read`: `");
        ak_buf_puts(&m, read);
        ak_buf_puts(&m, "` (json or fields)");
        *err = ak_error_newb(AK_CONFIG, "bad-config", ak_bytes_of(m.ptr, m.len));
        ak_buf_free(&m);
        return false;
    }
    typed = typed && key_field;
    if (typed && !ak_fields_declare((const ak_field[]){{key_field, AK_FIELD_UTF8}}, 1, err)) return false;
    return ak_store_open("default", &store, err);
}

/* read: fields: the record key, else key_field's string from the host's typed column. The array
 * is freed with ak_key_free + free. NULL when the batch's fields cannot be fetched. */
static ak_key *typed_keys(ak_batch *batch, ak_error *err) {
    const ak_fields *f = ak_batch_fields(batch, err);
    if (!f) return NULL;
    ak_strs col;
    ak_error col_err;
    bool have_col = ak_fields_str(f, key_field, &col, &col_err);
    ak_buf no_key = {0}; /* the no-key message (not ak_errorf: vsnprintf adds ~35 KB) */
    ak_buf_puts(&no_key, "no string field `");
    ak_buf_puts(&no_key, key_field);
    ak_buf_putc(&no_key, '`');
    ak_key *keys = calloc(batch->len ? batch->len : 1, sizeof *keys);
    if (!keys) abort();
    for (size_t i = 0; i < batch->len; i++) {
        ak_key *k = &keys[i];
        ak_bytes why;
        const ak_record_in *r = &batch->records[i];
        if (r->key.is_some) k->ok = true, k->bytes = r->key.val;
        else if (ak_fields_mismatch(f, i, &why)) k->err = ak_error_newb(AK_INVALID_INPUT, "bad-field", why);
        else if (!have_col) k->err = ak_error_clone(&col_err);
        else if (ak_strs_get(&col, i, &k->bytes)) k->ok = true;
        else k->err = ak_error_newb(AK_INVALID_INPUT, "no-key", ak_bytes_of(no_key.ptr, no_key.len));
    }
    ak_buf_free(&no_key);
    if (!have_col) ak_error_free(&col_err);
    return keys;
}

bool ak_process_batch(ak_batch *batch, ak_error *err) {
    ak_key *keys = typed ? typed_keys(batch, err) : ak_batch_keys(batch, key_field);
    if (!keys) return false;
    ak_cache counts = {0};
    bool ok = ak_cache_load_keys(&counts, store, keys, batch->len, err);
    for (size_t i = 0; ok && i < batch->len; i++) {
        ak_outcome *out = &batch->outcomes[i];
        int64_t n;
        ak_error e;
        if (!keys[i].ok) ak_outcome_fail(out, ak_error_take(&keys[i].err));
        else if (!ak_cache_increment(&counts, keys[i].bytes, 1, &n, &e)) ak_outcome_fail(out, e);
        else {
            ak_buf *v = ak_emit_begin(batch); /* straight into the batch's value buffer */
            ak_buf_puts(v, "{\"key\":\"");
            ak_buf_put_json_escaped(v, keys[i].bytes);
            ak_buf_puts(v, "\",\"count\":");
            ak_buf_put_i64(v, n);
            ak_buf_putc(v, '}');
            ak_emit_end(batch, i);
        }
    }
    ok = ok && ak_cache_flush(&counts, store, err);
    ak_cache_free(&counts);
    if (typed) { /* ak_batch_keys' array is the SDK's */
        for (size_t i = 0; i < batch->len; i++) ak_key_free(&keys[i]);
        free(keys);
    }
    return ok;
}
