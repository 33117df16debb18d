/* counter: a per-key running count in state store "default" (same contract as plugins/counter).
 * Key: the record key, else the JSON string/number member `key_field` (config) of the value;
 * neither: fail invalid-input "no-key". Emits {"key":"<key>","count":N} per record. One get-column
 * and one put-column per batch; counts are 8-byte little-endian i64s. */
#include "arkflow.h"

const ak_plugin_info ak_plugin = {
    .name = "counter",
    .version = "0.1.0",
    .state_stores = (const char *const[]){"default", NULL},
    .state_formats = (const ak_store_format[]){{"default", AK_FORMAT_I64}, {NULL, 0}},
};

static ak_store store;
static const char *key_field; /* NULL when unset */

bool ak_init(const ak_config *config, ak_error *err) {
    key_field = ak_config_get(config, "key_field");
    return ak_store_open("default", &store, err);
}

bool ak_process_batch(ak_batch *batch, ak_error *err) {
    ak_key *keys = ak_batch_keys(batch, key_field);
    ak_cache counts = {0};
    if (!ak_cache_load_keys(&counts, store, keys, batch->len, err)) return ak_cache_free(&counts), false;
    for (size_t i = 0; i < batch->len; i++) {
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
    bool ok = ak_cache_flush(&counts, store, err);
    ak_cache_free(&counts);
    return ok;
}
