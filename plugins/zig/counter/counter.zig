//! counter: a per-key running count in state store "default" (same contract as plugins/counter).
//! Key: the record key, else the member `key_field` (config) of the JSON value; neither: fail
//! invalid-input "no-key". Config `read`: `json` (the default) parses each value in the guest and
//! takes a string/number member; `fields` declares `key_field` as a utf8 field (ak.declareFields)
//! and reads the host's typed column (batch.fields()): then only a string member is a key, and a
//! value that is not a JSON object or whose `key_field` holds another type fails invalid-input
//! "bad-field" with the host's reason. Emits {"key":"<key>","count":N} per record. One
//! get-column and one put-column per batch; counts are 8-byte little-endian i64s.
const std = @import("std");
const ak = @import("arkflow");

pub const Counter = struct {
    store: ak.Store,
    key_field: ?[]const u8,
    /// `read: fields` (and a key_field): the key comes from the host's typed column.
    typed: bool,

    pub const info: ak.Info = .{
        .name = "counter",
        .version = "0.1.0",
        .state_stores = &.{"default"},
        .state_formats = &.{.{ .store = "default", .format = .i64 }},
    };

    pub fn init(config: ak.Config) ak.Failure!Counter {
        const key_field = config.get("key_field");
        const read = config.getOr("read", "json");
        const typed = if (std.mem.eql(u8, read, "json"))
            false
        else if (std.mem.eql(u8, read, "fields"))
            true
        else {
            var m = ak.Buf{};
            defer m.deinit();
            m.appendSlice("config `read`: `");
            m.appendSlice(read);
            m.appendSlice("` (json or fields)");
            return ak.fail(ak.configError("bad-config", m.items()));
        };
        if (typed) if (key_field) |f| try ak.declareFields(&.{.{ .name = f, .type = .utf8 }});
        return .{ .store = try ak.Store.open("default"), .key_field = key_field, .typed = typed and key_field != null };
    }

    pub fn processBatch(self: *Counter, batch: *ak.Batch) ak.Failure!void {
        // Records without a key already failed: null.
        const keys = if (self.typed) try self.typedKeys(batch) else batch.keys(self.key_field);
        defer if (self.typed) ak.freeSlice(keys);
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

    /// `read: fields`: each record's key (its record key, else its `key_field` string from the
    /// host's column: views, nothing copied); a record without one gets its fail outcome and null.
    fn typedKeys(self: *Counter, batch: *ak.Batch) ak.Failure![]?[]const u8 {
        const field = self.key_field.?;
        const fields = try batch.fields(); // one host call per batch
        const column = try fields.utf8(field);
        const keys = ak.alloc(?[]const u8, batch.len());
        for (batch.records, 0..) |*r, i| {
            keys[i] = null;
            if (ak.recordKey(r)) |k| {
                keys[i] = k;
            } else if (fields.mismatch(i)) |why| {
                batch.fail(i, ak.invalidInput("bad-field", why));
            } else if (column.get(i)) |k| {
                keys[i] = k;
            } else {
                var m = ak.Buf{};
                defer m.deinit();
                m.appendSlice("no string field `");
                m.appendSlice(field);
                m.append('`');
                batch.fail(i, ak.invalidInput("no-key", m.items()));
            }
        }
        return keys;
    }
};

comptime {
    ak.exportProcessor(Counter);
}
