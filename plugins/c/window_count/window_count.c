/* window_count: a keyed tumbling-window count on host timers (same contract as
 * plugins/window-count, the Rust one). Config: size_ms (required, > 0), key_field, domain
 * (event | processing). A record counts in [start, start + size_ms) of its timestamp (the event
 * time) or, for processing, of the host clock; the count lives in store "default" under
 * [start: i64 BE][key], with a timer on that key at start + size_ms - 1. A fired timer emits
 * {"key","window_start","window_end","count"} keyed by the key, timestamped window_end - 1, and
 * deletes the count. An event-time record whose window already fired fails with code "late". */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include "arkflow.h"

const ak_plugin_info ak_plugin = {
    .name = "window_count",
    .version = "0.1.0",
    .state_stores = (const char *const[]){"default", NULL},
    .state_formats = (const ak_store_format[]){{"default", AK_FORMAT_I64}, {NULL, 0}},
};

static ak_store store;
static const char *key_field;
static int64_t size_ms;
static ak_time_domain domain;

bool ak_init(const ak_config *config, ak_error *err) {
    key_field = ak_config_get(config, "key_field");
    if (!ak_config_get_i64(config, "size_ms", 0, &size_ms, err)) return false;
    if (size_ms <= 0) {
        *err = ak_config_error("bad-size", "config `size_ms` is required and must be > 0");
        return false;
    }
    const char *d = ak_config_get_or(config, "domain", "event");
    if (strcmp(d, "event") == 0) domain = AK_EVENT_TIME;
    else if (strcmp(d, "processing") == 0) domain = AK_PROCESSING_TIME;
    else {
        *err = ak_errorf(AK_CONFIG, "bad-domain", "`domain` must be `event` or `processing`, got `%s`", d);
        return false;
    }
    return ak_store_open("default", &store, err);
}

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Counts one record; false with *err when it fails (the outcome), never a batch error. */
static bool add(const ak_record_in *r, const ak_key *k, ak_error *err) {
    if (!k->ok) {
        *err = ak_error_clone(&k->err);
        return false;
    }
    int64_t time = domain == AK_EVENT_TIME ? r->timestamp_ms : ak_now();
    int64_t start = floor_div(time, size_ms) * size_ms;
    int64_t fire_at = start + size_ms - 1;
    if (domain == AK_EVENT_TIME && fire_at <= ak_watermark()) {
        *err = ak_errorf(AK_INVALID_INPUT, "late", "event time %lld is behind the watermark %lld: window [%lld, %lld) has closed",
                         (long long)time, (long long)ak_watermark(), (long long)start, (long long)(start + size_ms));
        return false;
    }
    ak_buf skey = {0};
    uint8_t be[8];
    for (int i = 0; i < 8; i++) be[i] = (uint8_t)((uint64_t)start >> (56 - 8 * i));
    ak_buf_put(&skey, be, 8);
    ak_buf_putb(&skey, k->bytes);
    int64_t n;
    bool ok = ak_timer_register(ak_bytes_of(skey.ptr, skey.len), fire_at, domain, err) &&
              ak_store_increment(store, ak_bytes_of(skey.ptr, skey.len), 1, &n, err);
    ak_buf_free(&skey);
    return ok;
}

bool ak_process_batch(ak_batch *batch, ak_error *err) {
    ak_key *keys = ak_batch_keys(batch, key_field);
    for (size_t i = 0; i < batch->len; i++) {
        ak_error e;
        if (add(&batch->records[i], &keys[i], &e)) ak_outcome_drop(&batch->outcomes[i]);
        else ak_outcome_fail(&batch->outcomes[i], e);
    }
    return true;
}

bool ak_on_timers(ak_timers *timers, ak_error *err) {
    for (size_t i = 0; i < timers->len; i++) {
        ak_bytes tkey = timers->fired[i].key;
        if (tkey.len < 8) {
            ak_outcome_drop(&timers->outcomes[i]);
            continue;
        }
        uint64_t u = 0;
        for (int b = 0; b < 8; b++) u = (u << 8) | tkey.ptr[b];
        int64_t start = (int64_t)u, count = 0;
        ak_opt_bytes v;
        if (!ak_store_get(store, tkey, &v, err)) return false;
        if (v.is_some) ak_decode_i64(v.val, &count);
        plugin_option_list_u8_free(&v);
        if (!ak_store_delete(store, tkey, NULL, err)) return false;
        ak_bytes key = ak_bytes_of(tkey.ptr + 8, tkey.len - 8);
        ak_buf out = {0};
        ak_buf_puts(&out, "{\"key\":\"");
        ak_buf_put_json_escaped(&out, key);
        char tail[96];
        snprintf(tail, sizeof tail, "\",\"window_start\":%lld,\"window_end\":%lld,\"count\":%lld}", (long long)start,
                 (long long)(start + size_ms), (long long)count);
        ak_buf_puts(&out, tail);
        ak_bytes value = ak_buf_take(&out);
        ak_record_out rec = {0};
        rec.key.is_some = true;
        rec.key.val = ak_bytes_dup(key);
        rec.value.is_some = true;
        rec.value.val = value;
        rec.timestamp_ms.is_some = true;
        rec.timestamp_ms.val = start + size_ms - 1;
        ak_outcome_emit(&timers->outcomes[i], rec);
    }
    return true;
}
