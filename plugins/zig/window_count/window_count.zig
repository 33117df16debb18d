//! window_count: a keyed tumbling-window count on host timers (same contract as
//! plugins/window-count, the Rust one). Config: size_ms (required, > 0), key_field, domain
//! (event | processing). A record counts in [start, start + size_ms) of its timestamp (the event
//! time) or, for processing, of the host clock; the count lives in store "default" under
//! [start: i64 BE][key], with a timer on that key at start + size_ms - 1. A fired timer emits
//! {"key","window_start","window_end","count"} keyed by the key, timestamped window_end - 1, and
//! deletes the count. An event-time record whose window already fired fails with code "late".
const std = @import("std");
const ak = @import("arkflow");

pub const WindowCount = struct {
    store: ak.Store,
    key_field: ?[]const u8,
    size_ms: i64,
    domain: ak.TimeDomain,

    pub const info: ak.Info = .{
        .name = "window_count",
        .version = "0.1.0",
        .state_stores = &.{"default"},
        .state_formats = &.{.{ .store = "default", .format = .i64 }},
    };

    pub fn init(config: ak.Config) ak.Failure!WindowCount {
        const size_ms = try config.getInt(i64, "size_ms", 0);
        if (size_ms <= 0) return ak.fail(ak.configError("bad-size", "config `size_ms` is required and must be > 0"));
        const d = config.getOr("domain", "event");
        const domain: ak.TimeDomain = if (std.mem.eql(u8, d, "event")) .event else if (std.mem.eql(u8, d, "processing")) .processing else {
            return ak.fail(ak.configError("bad-domain", "`domain` must be `event` or `processing`"));
        };
        return .{ .store = try ak.Store.open("default"), .key_field = config.get("key_field"), .size_ms = size_ms, .domain = domain };
    }

    /// Counts one record in its window and registers the window's timer.
    fn add(self: *WindowCount, r: *const ak.Record, key: []const u8) ak.Failure!void {
        const time = if (self.domain == .event) r.timestamp_ms else ak.now();
        const start = @divFloor(time, self.size_ms) * self.size_ms;
        const fire_at = start + self.size_ms - 1;
        if (self.domain == .event and fire_at <= ak.watermark()) {
            var m = ak.Buf{};
            defer m.deinit();
            m.appendSlice("event time ");
            m.appendInt(time);
            m.appendSlice(" is behind the watermark ");
            m.appendInt(ak.watermark());
            m.appendSlice(": its window has closed");
            return ak.fail(ak.invalidInput("late", m.items()));
        }
        var skey = ak.Buf{};
        defer skey.deinit();
        var be: [8]u8 = undefined;
        std.mem.writeInt(i64, &be, start, .big);
        skey.appendSlice(&be);
        skey.appendSlice(key);
        try ak.registerTimer(skey.items(), fire_at, self.domain);
        _ = try self.store.increment(skey.items(), 1);
    }

    pub fn processBatch(self: *WindowCount, batch: *ak.Batch) ak.Failure!void {
        const keys = batch.keys(self.key_field);
        for (keys, 0..) |maybe_key, i| {
            const key = maybe_key orelse continue;
            if (self.add(&batch.records[i], key)) batch.drop(i) else |_| batch.fail(i, ak.takeError());
        }
    }

    pub fn onTimers(self: *WindowCount, timers: *ak.Timers) ak.Failure!void {
        for (0..timers.fired.len) |i| {
            const tkey = timers.key(i);
            if (tkey.len < 8) {
                timers.drop(i);
                continue;
            }
            const start = std.mem.readInt(i64, tkey[0..8], .big);
            var count: i64 = 0;
            if (try self.store.get(tkey)) |v| {
                count = ak.decodeI64(v) orelse 0;
                ak.freeSlice(v);
            }
            _ = try self.store.delete(tkey);
            const key = tkey[8..];
            var v = ak.Buf{};
            v.appendSlice("{\"key\":\"");
            v.appendJsonEscaped(key);
            v.appendSlice("\",\"window_start\":");
            v.appendInt(start);
            v.appendSlice(",\"window_end\":");
            v.appendInt(start + self.size_ms);
            v.appendSlice(",\"count\":");
            v.appendInt(count);
            v.append('}');
            var rec = std.mem.zeroes(ak.RecordOut);
            var kb = ak.Buf{};
            kb.appendSlice(key);
            rec.key = .{ .is_some = true, .val = kb.take() };
            rec.value = .{ .is_some = true, .val = v.take() };
            rec.timestamp_ms = .{ .is_some = true, .val = start + self.size_ms - 1 };
            timers.emit(i, rec);
        }
    }
};

comptime {
    ak.exportProcessor(WindowCount);
}
