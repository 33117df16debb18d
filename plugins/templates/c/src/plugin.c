/* {{name}}: counts records per key. Each record emits {"key":"<key>","count":N}; the count is kept
 * in state store "default" as an i64 per key. A record without a key fails with invalid-input
 * "no-key". The API: sdk/arkflow.h. */
#include "arkflow.h"

const ak_plugin_info ak_plugin = {
    .name = "{{name}}",
    .version = "0.1.0",
    .state_stores = (const char *const[]){"default", NULL},
    .state_formats = (const ak_store_format[]){{"default", AK_FORMAT_I64}, {NULL, 0}},
};

static ak_store store;

bool ak_init(const ak_config *config, ak_error *err) {
    return ak_store_open("default", &store, err);
}

bool ak_process_batch(ak_batch *batch, ak_error *err) {
    ak_key *keys = ak_batch_keys(batch, NULL); /* each record's key, or its "no-key" error */
    ak_cache counts = {0};                     /* the batch's counts: one state read, one write */
    if (!ak_cache_load_keys(&counts, store, keys, batch->len, err)) return ak_cache_free(&counts), false;
    for (size_t i = 0; i < batch->len; i++) {
        int64_t n;
        ak_error e;
        if (!keys[i].ok) ak_outcome_fail(&batch->outcomes[i], ak_error_take(&keys[i].err));
        else if (!ak_cache_increment(&counts, keys[i].bytes, 1, &n, &e)) ak_outcome_fail(&batch->outcomes[i], e);
        else {
            ak_buf *v = ak_emit_begin(batch); /* the value of record i's output */
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
