//! counter: a per-key running count in state store "default" (same contract as plugins/counter).
//! Key: the record key, else the JSON string/number member `key_field` (config) of the value;
//! neither: fail invalid-input "no-key". Emits {"key":"<key>","count":N} per record. One get-column
//! and one put-column per batch; counts are 8-byte little-endian i64s.
const ak = @import("arkflow");

pub const Counter = struct {
    store: ak.Store,
    key_field: ?[]const u8,

    pub const info: ak.Info = .{
        .name = "counter",
        .version = "0.1.0",
        .state_stores = &.{"default"},
        .state_formats = &.{.{ .store = "default", .format = .i64 }},
    };

    pub fn init(config: ak.Config) ak.Failure!Counter {
        return .{ .store = try ak.Store.open("default"), .key_field = config.get("key_field") };
    }

    pub fn processBatch(self: *Counter, batch: *ak.Batch) ak.Failure!void {
        const keys = batch.keys(self.key_field); // records without a key already failed: null
        var counts = try ak.StateCache.load(self.store, keys);
        defer counts.deinit();
        for (keys, 0..) |maybe_key, i| {
            const key = maybe_key orelse continue;
            const n = counts.increment(key, 1) catch {
                batch.fail(i, ak.takeError());
                continue;
            };
            const v = batch.emitBegin(); // straight into the batch's value buffer
            v.appendSlice("{\"key\":\"");
            v.appendJsonEscaped(key);
            v.appendSlice("\",\"count\":");
            v.appendInt(n);
            v.append('}');
            batch.emitEnd(i);
        }
        try counts.flush(self.store);
    }
};

comptime {
    ak.exportProcessor(Counter);
}
