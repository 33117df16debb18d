/* Unit tests of the C SDK's typed fields (ak_fields_*), run natively by tests/run.sh: the SDK and
 * the generated bindings are compiled for the build machine, with the `fields` imports replaced
 * by the fakes below (the other imports are left unresolved: nothing here calls them). The
 * calls go through the real WIT exports (init, process-batch), so the SDK's freeing of the
 * host's reply runs too (under AddressSanitizer). */
#include "arkflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static bool bytes_is(ak_bytes b, const char *s) { return ak_bytes_eq(b, ak_str(s)); }
static bool str_is(plugin_string_t b, const char *s) { return b.len == strlen(s) && memcmp(b.ptr, s, b.len) == 0; }

/* ---- the fake host ---------------------------------------------------------------------- */

static size_t declared_n; /* fields of the last declare the fake accepted */
static int columns_calls;
static bool have_reply;   /* whether `columns` answers (else: an error, as with nothing declared) */

static void *dup_mem(const void *p, size_t n) {
    if (!n) return NULL;
    void *r = malloc(n);
    memcpy(r, p, n);
    return r;
}

static plugin_string_t own_str(const char *s) {
    plugin_string_t r = {dup_mem(s, strlen(s)), strlen(s)};
    return r;
}

/* The canonical-ABI return area: result tag, then the payload at pointer alignment. */
static void put_err(uint8_t *ret, const char *msg) {
    plugin_string_t s = own_str(msg);
    ret[0] = 1;
    memcpy(ret + sizeof(void *), &s.ptr, sizeof(void *));
    memcpy(ret + 2 * sizeof(void *), &s.len, sizeof(size_t));
}

void __wasm_import_arkflow_plugin_fields_declare(uint8_t *ptr, size_t len, uint8_t *ret) {
    const arkflow_plugin_fields_field_t *f = (const arkflow_plugin_fields_field_t *)ptr;
    for (size_t i = 0; i < len; i++)
        if (f[i].name.len == 0) return put_err(ret, "fields.declare: field 0 has a name of 0 bytes (1 to 256)");
    declared_n = len;
    ret[0] = 0;
}

/* Three records: n = [7, -, -2] (int64), s = ["a", "bc", -] (utf8), b = [-, true, false]
 * (boolean), x = [0.5, -, -] (float64); record 2 is mismatched (its `s` is a number). */
void __wasm_import_arkflow_plugin_fields_columns(uint8_t *ret) {
    columns_calls++;
    if (!have_reply) return put_err(ret, "fields.columns: nothing declared");
    arkflow_plugin_fields_typed_column_t cols[4];
    memset(cols, 0, sizeof cols);
    int64_t ints[] = {7, 0, -2};
    double floats[] = {0.5, 0, 0};
    uint32_t ends[] = {1, 3, 3};
    uint8_t bools = 0x2;
    cols[0].valid = (plugin_list_u8_t){dup_mem((uint8_t[]){0x5}, 1), 1};
    cols[0].values.tag = ARKFLOW_PLUGIN_FIELDS_TYPED_VALUES_INT64;
    cols[0].values.val.int64 = (plugin_list_s64_t){dup_mem(ints, sizeof ints), 3};
    cols[1].valid = (plugin_list_u8_t){dup_mem((uint8_t[]){0x3}, 1), 1};
    cols[1].values.tag = ARKFLOW_PLUGIN_FIELDS_TYPED_VALUES_UTF8;
    cols[1].values.val.utf8.data = (plugin_list_u8_t){dup_mem("abc", 3), 3};
    cols[1].values.val.utf8.ends = (plugin_list_u32_t){dup_mem(ends, sizeof ends), 3};
    cols[2].valid = (plugin_list_u8_t){dup_mem((uint8_t[]){0x6}, 1), 1};
    cols[2].values.tag = ARKFLOW_PLUGIN_FIELDS_TYPED_VALUES_BOOLEAN;
    cols[2].values.val.boolean = (plugin_list_u8_t){dup_mem(&bools, 1), 1};
    cols[3].valid = (plugin_list_u8_t){dup_mem((uint8_t[]){0x1}, 1), 1};
    cols[3].values.tag = ARKFLOW_PLUGIN_FIELDS_TYPED_VALUES_FLOAT64;
    cols[3].values.val.float64 = (plugin_list_f64_t){dup_mem(floats, sizeof floats), 3};
    plugin_tuple2_u32_string_t mism = {2, own_str("field `s`: a number where utf8 was declared")};
    void *cols_ptr = dup_mem(cols, sizeof cols), *mism_ptr = dup_mem(&mism, sizeof mism);
    size_t ncols = 4, nmism = 1;
    ret[0] = 0;
    memcpy(ret + sizeof(void *), &cols_ptr, sizeof(void *));
    memcpy(ret + 2 * sizeof(void *), &ncols, sizeof(size_t));
    memcpy(ret + 3 * sizeof(void *), &mism_ptr, sizeof(void *));
    memcpy(ret + 4 * sizeof(void *), &nmism, sizeof(size_t));
}

/* ---- the plugin under test ---------------------------------------------------------------- */

const ak_plugin_info ak_plugin = {.name = "fields-test", .version = "0.0.0"};

static const ak_field *init_fields;
static size_t init_n;

bool ak_init(const ak_config *config, ak_error *err) { return ak_fields_declare(init_fields, init_n, err); }

static int scenario;

static bool check_batch(ak_batch *batch, ak_error *err) {
    const ak_fields *f = ak_batch_fields(batch, err);
    if (!f) return false;
    CHECK(ak_batch_fields(batch, err) == f); /* fetched once */
    CHECK(columns_calls == 1);
    CHECK(f->len == 3 && f->mismatched_len == 1 && f->mismatched[0].f0 == 2);

    ak_i64s n;
    int64_t iv;
    CHECK(ak_fields_i64(f, "n", &n, err));
    CHECK(ak_i64s_get(&n, 0, &iv) && iv == 7);
    CHECK(!ak_i64s_get(&n, 1, &iv));
    CHECK(ak_i64s_get(&n, 2, &iv) && iv == -2);
    CHECK(!ak_i64s_get(&n, 3, &iv)); /* past the batch */

    ak_strs s;
    ak_bytes sv;
    CHECK(ak_fields_str(f, "s", &s, err));
    CHECK(ak_strs_get(&s, 0, &sv) && bytes_is(sv, "a"));
    CHECK(ak_strs_get(&s, 1, &sv) && bytes_is(sv, "bc"));
    CHECK(!ak_strs_get(&s, 2, &sv));
    CHECK(s.data == f->raw_.columns.ptr[1].values.val.utf8.data.ptr); /* a view, not a copy */

    ak_bools b;
    bool bv;
    CHECK(ak_fields_bool(f, "b", &b, err));
    CHECK(!ak_bools_get(&b, 0, &bv));
    CHECK(ak_bools_get(&b, 1, &bv) && bv);
    CHECK(ak_bools_get(&b, 2, &bv) && !bv);

    ak_f64s x;
    double xv;
    CHECK(ak_fields_f64(f, "x", &x, err));
    CHECK(ak_f64s_get(&x, 0, &xv) && xv == 0.5);
    CHECK(!ak_f64s_get(&x, 1, &xv));

    ak_error e;
    ak_f64s wrong;
    CHECK(!ak_fields_f64(f, "n", &wrong, &e)); /* declared as int64 */
    CHECK(e.class_ == AK_INTERNAL && str_is(e.code, "undeclared-field"));
    CHECK(str_is(e.message, "field `n` was not declared as float64 (ak_fields_declare)"));
    ak_error_free(&e);
    CHECK(!ak_fields_str(f, "zz", &s, &e));
    CHECK(str_is(e.code, "undeclared-field") && str_is(e.message, "field `zz` was not declared as utf8 (ak_fields_declare)"));
    ak_error_free(&e);

    ak_bytes why;
    CHECK(ak_fields_mismatch(f, 2, &why) && bytes_is(why, "field `s`: a number where utf8 was declared"));
    CHECK(!ak_fields_mismatch(f, 1, &why));
    CHECK(!ak_fields_mismatch(f, 0, NULL));
    CHECK(!ak_fields_mismatch(f, 3, NULL));
    return true;
}

bool ak_process_batch(ak_batch *batch, ak_error *err) {
    for (size_t i = 0; i < batch->len; i++) ak_outcome_drop(&batch->outcomes[i]);
    if (scenario == 0) return check_batch(batch, err);
    return ak_batch_fields(batch, err) != NULL; /* scenario 1: the host refuses */
}

/* ---- driving the exports ------------------------------------------------------------------ */

static bool init(const ak_field *fields, size_t n, ak_error *err) {
    init_fields = fields, init_n = n;
    plugin_list_tuple2_string_string_t config = {NULL, 0};
    return exports_arkflow_plugin_processor_init(&config, err);
}

static bool process(size_t n, ak_error *err) {
    arkflow_plugin_types_batch_t batch;
    memset(&batch, 0, sizeof batch);
    batch.timestamps.ptr = calloc(n, sizeof(int64_t));
    batch.timestamps.len = n;
    arkflow_plugin_types_batch_context_t ctx = {0};
    arkflow_plugin_types_outcomes_t out;
    bool ok = exports_arkflow_plugin_processor_process_batch(&ctx, &batch, &out, err);
    if (ok) arkflow_plugin_types_outcomes_free(&out);
    return ok;
}

int main(void) {
    ak_error err;

    /* A declaration the host refuses: config "bad-fields" with the host's message. */
    const ak_field bad[] = {{"", AK_FIELD_UTF8}};
    CHECK(!init(bad, 1, &err));
    CHECK(err.class_ == AK_CONFIG && str_is(err.code, "bad-fields"));
    CHECK(str_is(err.message, "fields.declare: field 0 has a name of 0 bytes (1 to 256)"));
    ak_error_free(&err);

    const ak_field good[] = {{"n", AK_FIELD_I64}, {"s", AK_FIELD_UTF8}, {"b", AK_FIELD_BOOL}, {"x", AK_FIELD_F64}};
    CHECK(init(good, 4, &err));
    CHECK(declared_n == 4);

    /* `columns` failing: the batch fails with internal "fields" and the host's reason. */
    scenario = 1, have_reply = false, columns_calls = 0;
    CHECK(!process(3, &err));
    CHECK(err.class_ == AK_INTERNAL && str_is(err.code, "fields") && str_is(err.message, "fields.columns: nothing declared"));
    ak_error_free(&err);

    scenario = 0, have_reply = true, columns_calls = 0;
    CHECK(process(3, &err));
    if (failures) {
        fprintf(stderr, "fields_test: %d check(s) failed\n", failures);
        return 1;
    }
    printf("fields_test: ok\n");
    return 0;
}
