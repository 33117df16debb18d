//! {{name}}: counts records per key. Each record emits {"key":"<key>","count":N}; the count is
//! kept in state store "default" as an i64 per key. A record without a key fails with
//! invalid-input "no-key". The API: sdk/arkflow.zig.
const ak = @import("arkflow");

pub const Plugin = struct {
    store: ak.Store,

    pub const info: ak.Info = .{
        .name = "{{name}}",
        .version = "0.1.0",
        .state_stores = &.{"default"},
        .state_formats = &.{.{ .store = "default", .format = .i64 }},
    };

    pub fn init(_: ak.Config) ak.Failure!Plugin {
        return .{ .store = try ak.Store.open("default") };
    }

    pub fn processBatch(self: *Plugin, batch: *ak.Batch) ak.Failure!void {
        const keys = batch.keys(null); // each record's key; null: it already failed with "no-key"
        var counts = try ak.StateCache.load(self.store, keys); // the batch's counts: one state read
        defer counts.deinit();
        for (keys, 0..) |maybe_key, i| {
            const key = maybe_key orelse continue;
            const n = counts.increment(key, 1) catch {
                batch.fail(i, ak.takeError());
                continue;
            };
            const v = batch.emitBegin(); // the value of record i's output
            v.appendSlice("{\"key\":\"");
            v.appendJsonEscaped(key);
            v.appendSlice("\",\"count\":");
            v.appendInt(n);
            v.append('}');
            batch.emitEnd(i);
        }
        try counts.flush(self.store); // one state write
    }
};

comptime {
    ak.exportProcessor(Plugin);
}
