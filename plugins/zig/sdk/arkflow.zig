//! arkflow.zig — the Zig SDK for ArkFlow processor plugins (WIT package arkflow:plugin@0.2.0).
//!
//! A plugin is a struct type P with
//!
//!     pub const info: ak.Info = .{ .name = "...", .version = "...", ... };
//!     pub fn init(config: ak.Config) ak.Failure!P
//!     pub fn processBatch(self: *P, batch: *ak.Batch) ak.Failure!void
//!     pub fn onCheckpoint(self: *P, ctx: ak.CheckpointContext) ak.Failure!void   // optional
//!     pub fn onTimers(self: *P, timers: *ak.Timers) ak.Failure!void              // with timers
//!
//! exported with `comptime { ak.exportProcessor(P); }`. The SDK implements the WIT exports
//! (describe, init, process-batch, on-checkpoint, on-timers) that the wit-bindgen C glue
//! (plugin.c, generated from wit/ at build time for the world `timed-plugin` under the name
//! `plugin`, and compiled in) calls, and wraps the imports: `Store` (state), `registerTimer` /
//! `deleteTimer` / `watermark` / `now` (timers; a plugin that never calls them does not import
//! them), `log`, `metrics`, and typed fields (`declareFields` in init, `Batch.fields` per batch:
//! the host decodes the declared top-level JSON fields of every record into typed columns; a
//! plugin that never declares does not import them). Behaviour mirrors the Rust SDK
//! (plugins/sdk): same JSON rules and messages, same escaping, same state-cache order.
//!
//! Typed fields, in short:
//!
//!     // init:
//!     try ak.declareFields(&.{.{ .name = "user", .type = .utf8 }});
//!     // processBatch:
//!     const f = try batch.fields(); // one host call; freed when processBatch returns
//!     const users = try f.utf8("user"); // also int64 / float64 / boolean
//!     for (0..batch.len()) |i| {
//!         if (f.mismatch(i)) |why| { batch.fail(i, ak.invalidInput("bad-field", why)); continue; }
//!         const user = users.get(i) orelse { batch.drop(i); continue; }; // missing, null, no value
//!         ...
//!     }
//!
//! Errors: a WIT `error` carries class/code/message, which a Zig error cannot. Fallible SDK calls
//! return `Failure!T` (`error.Failed`) and park the details; `takeError()` hands them over (the
//! SDK does it for you when `init`/`processBatch`/`onCheckpoint` return `error.Failed`).
//!
//! Memory: buffers handed to the host (emitted values, errors) are malloc'd (the generated glue
//! free()s them after the call), so link libc (`-lc`). Everything in a batch lives until
//! processBatch returns.
const std = @import("std");

/// The translate-c'd wit-bindgen header (plugin.h): every generated type and function.
pub const c = @import("bindings");

pub const abi_version = "0.2.0";

// ================================== memory (libc) ==================================

fn oom() noreturn {
    std.c.abort();
}

/// `n` items from malloc (free with `freeSlice`).
pub fn alloc(comptime T: type, n: usize) []T {
    if (n == 0) return @as([*]T, @ptrFromInt(@alignOf(T)))[0..0];
    const raw = std.c.malloc(n * @sizeOf(T)) orelse oom();
    const p: [*]T = @ptrCast(@alignCast(raw));
    return p[0..n];
}

pub fn freeSlice(s: anytype) void {
    if (s.len != 0) std.c.free(@ptrCast(@constCast(s.ptr)));
}

pub fn dupe(s: []const u8) []u8 {
    const r = alloc(u8, s.len);
    @memcpy(r, s);
    return r;
}

/// A byte slice as the bindings' list<u8> (borrowed).
pub fn list(s: []const u8) c.plugin_list_u8_t {
    return .{ .ptr = @constCast(s.ptr), .len = s.len };
}

fn ViewOf(comptime L: type) type {
    return []@typeInfo(@FieldType(L, "ptr")).pointer.child;
}

/// A bindings list (list<u8>, string, list<T>) as a slice (borrowed).
pub fn bytes(l: anytype) ViewOf(@TypeOf(l)) {
    const T = @typeInfo(@FieldType(@TypeOf(l), "ptr")).pointer.child;
    if (l.len == 0) return @as([*]T, @ptrFromInt(@alignOf(T)))[0..0];
    return l.ptr[0..l.len];
}

fn cString(s: []const u8) c.plugin_string_t {
    const d = dupe(s);
    return .{ .ptr = if (s.len == 0) null else d.ptr, .len = s.len };
}

// ===================================== buffers =====================================

/// A growable malloc'd byte buffer. `take` hands its contents to an outcome.
pub const Buf = struct {
    ptr: ?[*]u8 = null,
    len: usize = 0,
    cap: usize = 0,

    pub fn reserve(self: *Buf, extra: usize) void {
        if (self.cap - self.len >= extra) return;
        var cap: usize = if (self.cap == 0) 32 else self.cap * 2;
        while (cap - self.len < extra) cap *= 2;
        const p = std.c.realloc(@ptrCast(self.ptr), cap) orelse oom();
        self.ptr = @ptrCast(p);
        self.cap = cap;
    }

    pub fn append(self: *Buf, b: u8) void {
        self.reserve(1);
        self.ptr.?[self.len] = b;
        self.len += 1;
    }

    pub fn appendSlice(self: *Buf, s: []const u8) void {
        if (s.len == 0) return;
        self.reserve(s.len);
        @memcpy(self.ptr.?[self.len .. self.len + s.len], s);
        self.len += s.len;
    }

    /// Decimal text of `v`.
    pub fn appendInt(self: *Buf, v: i64) void {
        var tmp: [20]u8 = undefined;
        var i: usize = tmp.len;
        var u: u64 = if (v < 0) 0 -% @as(u64, @bitCast(v)) else @intCast(v);
        while (true) {
            i -= 1;
            tmp[i] = '0' + @as(u8, @intCast(u % 10));
            u /= 10;
            if (u == 0) break;
        }
        if (v < 0) self.append('-');
        self.appendSlice(tmp[i..]);
    }

    /// `data` rendered as UTF-8 (invalid sequences -> U+FFFD, like Rust's from_utf8_lossy) and
    /// JSON-escaped, without quotes.
    pub fn appendJsonEscaped(self: *Buf, data: []const u8) void {
        appendEscaped(self, data);
    }

    pub fn items(self: *const Buf) []u8 {
        return if (self.ptr) |p| p[0..self.len] else &[_]u8{};
    }

    /// The contents as an owned list<u8>; the buffer is reset.
    pub fn take(self: *Buf) c.plugin_list_u8_t {
        const r: c.plugin_list_u8_t = .{ .ptr = self.ptr, .len = self.len };
        if (self.len == 0 and self.ptr != null) std.c.free(@ptrCast(self.ptr));
        self.* = .{};
        return if (r.len == 0) .{ .ptr = null, .len = 0 } else r;
    }

    pub fn deinit(self: *Buf) void {
        if (self.ptr) |p| std.c.free(@ptrCast(p));
        self.* = .{};
    }
};

// ======================================= UTF-8 =======================================

/// Length of the valid UTF-8 sequence at s[0..] (1..4), or the negated length of its maximal
/// valid prefix (>= 1): the unit from_utf8_lossy replaces by one U+FFFD.
fn utf8Seq(s: []const u8) i32 {
    const b0 = s[0];
    if (b0 < 0x80) return 1;
    var lo: u8 = 0x80;
    var hi: u8 = 0xbf;
    const width: usize = switch (b0) {
        0xc2...0xdf => 2,
        0xe0...0xef => blk: {
            if (b0 == 0xe0) lo = 0xa0;
            if (b0 == 0xed) hi = 0x9f;
            break :blk 3;
        },
        0xf0...0xf4 => blk: {
            if (b0 == 0xf0) lo = 0x90;
            if (b0 == 0xf4) hi = 0x8f;
            break :blk 4;
        },
        else => return -1,
    };
    var i: usize = 1;
    while (i < width) : (i += 1) {
        if (i >= s.len) return -@as(i32, @intCast(i));
        const d = s[i];
        const bad = if (i == 1) (d < lo or d > hi) else (d < 0x80 or d > 0xbf);
        if (bad) return -@as(i32, @intCast(i));
    }
    return @intCast(width);
}

fn utf8ValidUpTo(s: []const u8) usize {
    var i: usize = 0;
    while (i < s.len) {
        if (s[i] < 0x80) {
            i += 1;
            continue;
        }
        const w = utf8Seq(s[i..]);
        if (w < 0) return i;
        i += @intCast(w);
    }
    return s.len;
}

const hex_digits = "0123456789abcdef";

fn appendEscaped(b: *Buf, s: []const u8) void {
    var i: usize = 0;
    var run: usize = 0;
    while (i < s.len) {
        const ch = s[i];
        if (ch >= 0x20 and ch < 0x80 and ch != '"' and ch != '\\') {
            i += 1;
            continue;
        }
        if (ch >= 0x80) {
            const w = utf8Seq(s[i..]);
            if (w > 0) {
                i += @intCast(w);
                continue;
            }
            b.appendSlice(s[run..i]);
            b.appendSlice("\xef\xbf\xbd");
            i += @intCast(-w);
            run = i;
            continue;
        }
        b.appendSlice(s[run..i]);
        switch (ch) {
            '"' => b.appendSlice("\\\""),
            '\\' => b.appendSlice("\\\\"),
            '\n' => b.appendSlice("\\n"),
            '\r' => b.appendSlice("\\r"),
            '\t' => b.appendSlice("\\t"),
            0x08 => b.appendSlice("\\b"),
            0x0c => b.appendSlice("\\f"),
            else => b.appendSlice(&[_]u8{ '\\', 'u', '0', '0', hex_digits[ch >> 4], hex_digits[ch & 15] }),
        }
        i += 1;
        run = i;
    }
    b.appendSlice(s[run..]);
}

// ====================================== errors ======================================

pub const ErrorClass = enum(u8) { invalid_input = 0, config = 1, state = 2, retriable = 3, internal = 4 };
pub const ValueFormat = enum(u8) { bytes = 0, utf8 = 1, json = 2, i64 = 3 };
pub const Level = enum(u8) { trace = 0, debug = 1, info = 2, warn = 3, err = 4 };

/// A WIT `error` (class, code, message), owning malloc'd strings.
pub const Error = struct {
    raw: c.arkflow_plugin_types_error_t,

    pub fn init(class: ErrorClass, code_: []const u8, message_: []const u8) Error {
        return .{ .raw = .{ .class_ = @intFromEnum(class), .code = cString(code_), .message = cString(message_) } };
    }
    pub fn errorClass(self: *const Error) ErrorClass {
        return @enumFromInt(self.raw.class_);
    }
    pub fn code(self: *const Error) []const u8 {
        return bytes(self.raw.code);
    }
    pub fn message(self: *const Error) []const u8 {
        return bytes(self.raw.message);
    }
    pub fn deinit(self: *Error) void {
        c.arkflow_plugin_types_error_free(&self.raw);
    }
};

pub fn invalidInput(code: []const u8, message: []const u8) Error {
    return Error.init(.invalid_input, code, message);
}
pub fn configError(code: []const u8, message: []const u8) Error {
    return Error.init(.config, code, message);
}
pub fn retriable(code: []const u8, message: []const u8) Error {
    return Error.init(.retriable, code, message);
}
pub fn internal(code: []const u8, message: []const u8) Error {
    return Error.init(.internal, code, message);
}

fn errorFromBuf(class: ErrorClass, code: []const u8, m: *Buf) Error {
    const e = Error.init(class, code, m.items());
    m.deinit();
    return e;
}

/// The error set of every fallible SDK call and plugin callback; details via `takeError`.
pub const Failure = error{Failed};

var pending: ?Error = null;

/// Parks `e` as the pending error and returns error.Failed: `return ak.fail(ak.invalidInput(..))`.
pub fn fail(e: Error) Failure {
    if (pending) |*old| old.deinit();
    pending = e;
    return error.Failed;
}

/// The pending error (ownership moves to the caller).
pub fn takeError() Error {
    if (pending) |e| {
        pending = null;
        return e;
    }
    return internal("unknown-error", "the plugin returned error.Failed without ak.fail");
}

/// A failed state call: class state, code = the variant's WIT name.
pub fn stateError(se: *const c.arkflow_plugin_state_state_error_t) Error {
    const codes = [_][]const u8{ "unknown-store", "no-scope", "key-too-large", "value-too-large", "quota-exceeded", "not-a-counter", "disabled" };
    const names = [_][]const u8{ "UnknownStore", "NoScope", "KeyTooLarge", "ValueTooLarge", "QuotaExceeded", "NotACounter", "Disabled" };
    const t: usize = if (se.tag < 7) se.tag else 6;
    var m = Buf{};
    m.appendSlice("StateError::");
    m.appendSlice(names[t]);
    switch (se.tag) {
        0, 4 => {
            m.appendSlice("(\"");
            const s = bytes(if (se.tag == 0) se.val.unknown_store else se.val.quota_exceeded);
            for (s) |ch| switch (ch) {
                '"' => m.appendSlice("\\\""),
                '\\' => m.appendSlice("\\\\"),
                '\n' => m.appendSlice("\\n"),
                '\r' => m.appendSlice("\\r"),
                '\t' => m.appendSlice("\\t"),
                else => m.append(ch),
            };
            m.appendSlice("\")");
        },
        2, 3 => {
            m.append('(');
            m.appendInt(@intCast(if (se.tag == 2) se.val.key_too_large else se.val.value_too_large));
            m.append(')');
        },
        else => {},
    }
    return errorFromBuf(.state, codes[t], &m);
}

fn stateFail(se: *c.arkflow_plugin_state_state_error_t) Failure {
    const e = stateError(se);
    c.arkflow_plugin_state_state_error_free(se);
    return fail(e);
}

// ================================== describe / config ==================================

pub const StoreFormat = struct { store: []const u8, format: ValueFormat };

/// What describe() returns (abi is always `abi_version`).
pub const Info = struct {
    name: []const u8,
    version: []const u8,
    state_stores: []const []const u8 = &.{},
    state_formats: []const StoreFormat = &.{},
    /// The key the plugin's state is grouped by when it is not the record key (a top-level field
    /// of the JSON value, or "record_key"); the host routes by it as a YAML `key_by:` would.
    key_by: ?[]const u8 = null,
};

/// The YAML `config:` map handed to init (values as strings, nested YAML as JSON text). The
/// slices stay valid for the instance's lifetime.
pub const Config = struct {
    raw: c.plugin_list_tuple2_string_string_t,

    pub fn len(self: Config) usize {
        return self.raw.len;
    }
    pub fn key(self: Config, i: usize) []const u8 {
        return bytes(self.raw.ptr[i].f0);
    }
    pub fn value(self: Config, i: usize) []const u8 {
        return bytes(self.raw.ptr[i].f1);
    }
    /// The value of `name` (the last one given), or null.
    pub fn get(self: Config, name: []const u8) ?[]const u8 {
        var i = self.raw.len;
        while (i > 0) {
            i -= 1;
            if (std.mem.eql(u8, self.key(i), name)) return self.value(i);
        }
        return null;
    }
    pub fn getOr(self: Config, name: []const u8, default: []const u8) []const u8 {
        return self.get(name) orelse default;
    }
    /// The value of `name`, or Failed with config/missing-config.
    pub fn require(self: Config, name: []const u8) Failure![]const u8 {
        if (self.get(name)) |v| return v;
        var m = Buf{};
        m.appendSlice("config `");
        m.appendSlice(name);
        m.appendSlice("` is required");
        return fail(errorFromBuf(.config, "missing-config", &m));
    }
    /// `name` as an integer (surrounding whitespace ignored), `default` when unset, or Failed
    /// with config/bad-config.
    pub fn getInt(self: Config, comptime T: type, name: []const u8, default: T) Failure!T {
        const raw = self.get(name) orelse return default;
        const trimmed = std.mem.trim(u8, raw, " \t\r\n");
        return std.fmt.parseInt(T, trimmed, 10) catch {
            var m = Buf{};
            m.appendSlice("config `");
            m.appendSlice(name);
            m.appendSlice("`: cannot parse \"");
            m.appendSlice(raw);
            m.appendSlice("\" as ");
            m.appendSlice(@typeName(T));
            return fail(errorFromBuf(.config, "bad-config", &m));
        };
    }
};

// ======================================== JSON ========================================

pub const json = struct {
    pub const max_depth = 128;

    pub const Kind = enum { string, number, boolean, null, object, array };

    /// A JSON value: `text` is a string's unescaped contents, else the value's raw text.
    pub const Value = struct {
        kind: Kind,
        text: []const u8,
        owned: ?[]u8 = null,

        /// A string's contents or a number's text: what can serve as a key; null otherwise.
        pub fn asKey(self: *const Value) ?[]const u8 {
            return switch (self.kind) {
                .string, .number => self.text,
                else => null,
            };
        }
        pub fn deinit(self: *Value) void {
            if (self.owned) |o| freeSlice(o);
            self.owned = null;
        }
    };

    const Parser = struct {
        b: []const u8,
        pos: usize = 0,
        depth: usize = 0,
        err_at: usize = 0,
        reason: []const u8 = "",

        fn failAt(p: *Parser, reason: []const u8) error{Json} {
            p.err_at = p.pos;
            p.reason = reason;
            return error.Json;
        }
        fn peek(p: *const Parser) ?u8 {
            return if (p.pos < p.b.len) p.b[p.pos] else null;
        }
        fn ws(p: *Parser) void {
            while (p.pos < p.b.len) : (p.pos += 1) switch (p.b[p.pos]) {
                ' ', '\t', '\n', '\r' => {},
                else => return,
            };
        }
        fn hex4(p: *Parser) error{Json}!u32 {
            if (p.b.len - p.pos < 4) return p.failAt("truncated \\u escape");
            const h = p.b[p.pos .. p.pos + 4];
            var v: u32 = 0;
            // Exactly four hex digits.
            for (h) |ch| {
                const d: u32 = switch (ch) {
                    '0'...'9' => ch - '0',
                    'a'...'f' => ch - 'a' + 10,
                    'A'...'F' => ch - 'A' + 10,
                    else => return p.failAt("invalid \\u escape"),
                };
                v = v * 16 + d;
            }
            p.pos += 4;
            return v;
        }
        fn putUtf8(out: *Buf, cp: u32) void {
            if (cp < 0x80) {
                out.append(@intCast(cp));
            } else if (cp < 0x800) {
                out.appendSlice(&[_]u8{ @intCast(0xc0 | cp >> 6), @intCast(0x80 | (cp & 0x3f)) });
            } else if (cp < 0x10000) {
                out.appendSlice(&[_]u8{ @intCast(0xe0 | cp >> 12), @intCast(0x80 | ((cp >> 6) & 0x3f)), @intCast(0x80 | (cp & 0x3f)) });
            } else {
                out.appendSlice(&[_]u8{ @intCast(0xf0 | cp >> 18), @intCast(0x80 | ((cp >> 12) & 0x3f)), @intCast(0x80 | ((cp >> 6) & 0x3f)), @intCast(0x80 | (cp & 0x3f)) });
            }
        }
        /// A string at pos ('"'). With scratch: returns its unescaped contents (a slice of the
        /// document when it has no escapes, else of scratch).
        fn string(p: *Parser, scratch: ?*Buf) error{Json}![]const u8 {
            p.pos += 1;
            const start = p.pos;
            while (true) {
                const ch = p.peek() orelse return p.failAt("unterminated string");
                if (ch == '"') {
                    p.pos += 1;
                    return p.b[start .. p.pos - 1];
                }
                if (ch == '\\') break;
                if (ch < 0x20) return p.failAt("control character in string");
                p.pos += 1;
            }
            if (scratch) |s| {
                s.len = 0;
                s.appendSlice(p.b[start..p.pos]);
            }
            while (true) {
                const run = p.pos;
                while (true) {
                    const ch = p.peek() orelse return p.failAt("unterminated string");
                    if (ch == '"' or ch == '\\') break;
                    if (ch < 0x20) return p.failAt("control character in string");
                    p.pos += 1;
                }
                if (scratch) |s| s.appendSlice(p.b[run..p.pos]);
                if (p.peek() == '"') {
                    p.pos += 1;
                    return if (scratch) |s| s.items() else &[_]u8{};
                }
                p.pos += 1; // the backslash
                const e = p.peek() orelse return p.failAt("unterminated string");
                p.pos += 1;
                const cp: u32 = switch (e) {
                    '"' => '"',
                    '\\' => '\\',
                    '/' => '/',
                    'b' => 0x08,
                    'f' => 0x0c,
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'u' => blk: {
                        const hi = try p.hex4();
                        if (hi >= 0xd800 and hi < 0xdc00) {
                            if (p.b.len - p.pos < 2 or p.b[p.pos] != '\\' or p.b[p.pos + 1] != 'u')
                                return p.failAt("lone surrogate");
                            p.pos += 2;
                            const lo = try p.hex4();
                            if (lo < 0xdc00 or lo >= 0xe000) return p.failAt("lone surrogate");
                            break :blk 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                        }
                        if (hi >= 0xdc00 and hi < 0xe000) return p.failAt("lone surrogate");
                        break :blk hi;
                    },
                    else => return p.failAt("invalid escape"),
                };
                if (scratch) |s| putUtf8(s, cp);
            }
        }
        fn digits(p: *Parser) usize {
            const start = p.pos;
            while (p.pos < p.b.len and p.b[p.pos] >= '0' and p.b[p.pos] <= '9') p.pos += 1;
            return p.pos - start;
        }
        fn number(p: *Parser) error{Json}!void {
            if (p.peek() == '-') p.pos += 1;
            const ch = p.peek() orelse 0;
            if (ch == '0') {
                p.pos += 1;
            } else if (ch >= '1' and ch <= '9') {
                _ = p.digits();
            } else return p.failAt("invalid number");
            if (p.peek() == '.') {
                p.pos += 1;
                if (p.digits() == 0) return p.failAt("invalid number");
            }
            if (p.peek() == 'e' or p.peek() == 'E') {
                p.pos += 1;
                if (p.peek() == '+' or p.peek() == '-') p.pos += 1;
                if (p.digits() == 0) return p.failAt("invalid number");
            }
        }
        fn literal(p: *Parser, word: []const u8) error{Json}!void {
            if (!std.mem.startsWith(u8, p.b[p.pos..], word)) return p.failAt("invalid literal");
            p.pos += word.len;
        }
        fn enter(p: *Parser) error{Json}!void {
            p.depth += 1;
            if (p.depth > max_depth) return p.failAt("nesting too deep");
        }
        /// An object at pos; returns its first member named `want` (value text into scratch).
        fn object(p: *Parser, want: ?[]const u8, names: ?*Buf, scratch: ?*Buf) error{Json}!?Value {
            try p.enter();
            p.pos += 1; // '{'
            p.ws();
            if (p.peek() == '}') {
                p.pos += 1;
                p.depth -= 1;
                return null;
            }
            var found: ?Value = null;
            while (true) {
                p.ws();
                if (p.peek() != '"') return p.failAt("expected a member name");
                const name = try p.string(if (want != null) names else null);
                p.ws();
                if (p.peek() != ':') return p.failAt("expected ':'");
                p.pos += 1;
                const take = found == null and want != null and std.mem.eql(u8, name, want.?);
                const v = try p.value(if (take) scratch else null);
                if (take) found = v;
                p.ws();
                switch (p.peek() orelse 0) {
                    ',' => p.pos += 1,
                    '}' => {
                        p.pos += 1;
                        break;
                    },
                    else => return p.failAt("expected ',' or '}'"),
                }
            }
            p.depth -= 1;
            return found;
        }
        fn array(p: *Parser) error{Json}!void {
            try p.enter();
            p.pos += 1; // '['
            p.ws();
            if (p.peek() == ']') {
                p.pos += 1;
                p.depth -= 1;
                return;
            }
            while (true) {
                _ = try p.value(null);
                p.ws();
                switch (p.peek() orelse 0) {
                    ',' => p.pos += 1,
                    ']' => {
                        p.pos += 1;
                        break;
                    },
                    else => return p.failAt("expected ',' or ']'"),
                }
            }
            p.depth -= 1;
        }
        fn value(p: *Parser, scratch: ?*Buf) error{Json}!Value {
            p.ws();
            const start = p.pos;
            const ch = p.peek() orelse return p.failAt("unexpected end of input");
            const kind: Kind = switch (ch) {
                '"' => return .{ .kind = .string, .text = try p.string(scratch) },
                '{' => blk: {
                    _ = try p.object(null, null, null);
                    break :blk .object;
                },
                '[' => blk: {
                    try p.array();
                    break :blk .array;
                },
                't' => blk: {
                    try p.literal("true");
                    break :blk .boolean;
                },
                'f' => blk: {
                    try p.literal("false");
                    break :blk .boolean;
                },
                'n' => blk: {
                    try p.literal("null");
                    break :blk .null;
                },
                '-', '0'...'9' => blk: {
                    try p.number();
                    break :blk .number;
                },
                else => return p.failAt("unexpected character"),
            };
            return .{ .kind = kind, .text = p.b[start..p.pos] };
        }
    };

    /// Validates the WHOLE document (RFC 8259, UTF-8, nesting <= 128) and returns its top-level
    /// member `name` (first one wins; free with Value.deinit), null when absent or not an
    /// object, or Failed with invalid-input/bad-json.
    pub fn field(doc: []const u8, name: []const u8) Failure!?Value {
        var p = Parser{ .b = doc };
        var names = Buf{};
        defer names.deinit();
        var scratch = Buf{};
        const found = parse(&p, name, &names, &scratch) catch {
            scratch.deinit();
            var m = Buf{};
            m.appendSlice("invalid JSON at byte ");
            m.appendInt(@intCast(p.err_at));
            m.appendSlice(": ");
            m.appendSlice(p.reason);
            return fail(errorFromBuf(.invalid_input, "bad-json", &m));
        };
        var v = found orelse {
            scratch.deinit();
            return null;
        };
        if (v.kind == .string and scratch.ptr != null and v.text.ptr == scratch.ptr.?) {
            const items = scratch.items();
            v.owned = items;
            v.text = items;
        } else {
            scratch.deinit();
        }
        return v;
    }

    fn parse(p: *Parser, name: []const u8, names: *Buf, scratch: *Buf) error{Json}!?Value {
        const valid = utf8ValidUpTo(p.b);
        if (valid != p.b.len) {
            p.pos = valid;
            return p.failAt("not UTF-8");
        }
        p.ws();
        var found: ?Value = null;
        if (p.peek() == '{') {
            found = try p.object(name, names, scratch);
        } else {
            _ = try p.value(null);
        }
        p.ws();
        if (p.pos != p.b.len) return p.failAt("trailing characters");
        return found;
    }

    /// Checks that `doc` is one valid JSON document (Failed with bad-json otherwise).
    pub fn validate(doc: []const u8) Failure!void {
        var v = (try field(doc, "")) orelse return;
        v.deinit();
    }

    /// Appends `s` JSON-escaped (lossy UTF-8), without quotes.
    pub fn escapeInto(out: *Buf, s: []const u8) void {
        appendEscaped(out, s);
    }
};

// ==================================== records ====================================

// 0.2.0 sends a batch as columns; the SDK shows it as Records viewing those buffers (nothing
// copied per record; valid until processBatch returns, never freed by the plugin) and packs the
// outcomes back into one buffer of emitted values on return.

pub const Header = c.arkflow_plugin_types_header_t;
pub const HeaderList = extern struct { ptr: [*c]Header, len: usize };
const OptBytes = c.plugin_option_list_u8_t;

/// A record handed to the plugin (views into the batch's buffers).
pub const Record = extern struct {
    key: OptBytes,
    value: OptBytes,
    headers: HeaderList,
    timestamp_ms: i64,
    partition: u32,
    offset: u64,
};

/// A record the plugin emits (owns its buffers). Absent key / timestamp: the input's; present
/// output: the stream's named output of that name.
pub const RecordOut = extern struct {
    key: OptBytes,
    value: OptBytes,
    headers: HeaderList,
    timestamp_ms: extern struct { is_some: bool, val: i64 },
    output: extern struct { is_some: bool, val: c.plugin_string_t },
};

pub const BatchContext = c.arkflow_plugin_types_batch_context_t;
pub const CheckpointContext = c.arkflow_plugin_types_checkpoint_context_t;
const RecordOutList = extern struct { ptr: [*c]RecordOut, len: usize };
const Span = extern struct { start: u32, len: u32 };
const Outcome = extern struct { tag: u8, val: extern union { emit: RecordOutList, fail: c.arkflow_plugin_types_error_t, span: Span } };
const outcome_emit: u8 = 0;
const outcome_drop: u8 = 1;
const outcome_fail: u8 = 2;
/// A value in the batch's value buffer (emitBegin / emitEnd).
const outcome_span: u8 = 3;

const outcome_unset: u8 = 0xff;

/// The record key, or null.
pub fn recordKey(r: *const Record) ?[]const u8 {
    return if (r.key.is_some) bytes(r.key.val) else null;
}

/// The record value, or null (tombstone).
pub fn recordValue(r: *const Record) ?[]const u8 {
    return if (r.value.is_some) bytes(r.value.val) else null;
}

/// The first header named `name`, or null.
pub fn recordHeader(r: *const Record, name: []const u8) ?[]const u8 {
    for (bytes(r.headers)) |h| if (std.mem.eql(u8, bytes(h.key), name)) return bytes(h.value);
    return null;
}

/// A record-out with this value (copied); key/timestamp absent so the host keeps the input's.
pub fn recordOut(value: []const u8) RecordOut {
    var r = std.mem.zeroes(RecordOut);
    var b = Buf{};
    b.appendSlice(value);
    r.value = .{ .is_some = true, .val = b.take() };
    return r;
}

/// The key of a record: its record key, else (key_field set) the JSON string/number member
/// `key_field` of its value. Failed with invalid-input "no-key" (or "bad-json") otherwise.
/// `owned` receives the buffer of an unescaped key (free with freeSlice).
pub fn keyOf(r: *const Record, key_field: ?[]const u8, owned: *?[]u8) Failure![]const u8 {
    owned.* = null;
    if (recordKey(r)) |k| return k;
    const field = key_field orelse return fail(invalidInput("no-key", "record has no key and no `key_field` value"));
    const doc = recordValue(r) orelse return fail(invalidInput("no-key", "record has no key and no `key_field` value"));
    if (try json.field(doc, field)) |v| {
        var val = v;
        if (val.asKey()) |k| {
            owned.* = val.owned;
            return k;
        }
        val.deinit();
    }
    var m = Buf{};
    m.appendSlice("no string/number field `");
    m.appendSlice(field);
    m.append('`');
    return fail(errorFromBuf(.invalid_input, "no-key", &m));
}

/// One process-batch call: the records, and one outcome per record to set with emit*/pass/
/// drop/fail. An outcome left unset becomes fail(internal, "no-outcome").
pub const Batch = struct {
    ctx: *const BatchContext,
    records: []Record,
    outcomes: []Outcome,
    keys_: ?[]?[]const u8 = null,
    owned_: ?[]?[]u8 = null,
    fields_: ?Fields = null,
    values_: Buf = .{},
    mark_: usize = 0,

    pub fn len(self: *const Batch) usize {
        return self.records.len;
    }

    /// The key of every record (see keyOf). A record without one gets its fail outcome
    /// (no-key / bad-json) set here and a null entry. Lives until processBatch returns.
    pub fn keys(self: *Batch, key_field: ?[]const u8) []?[]const u8 {
        if (self.keys_) |k| return k;
        const ks = alloc(?[]const u8, self.records.len);
        const owned = alloc(?[]u8, self.records.len);
        for (self.records, 0..) |*r, i| {
            ks[i] = keyOf(r, key_field, &owned[i]) catch blk: {
                self.fail(i, takeError());
                break :blk null;
            };
        }
        self.keys_ = ks;
        self.owned_ = owned;
        return ks;
    }

    /// The fields declared with `declareFields` (in init), decoded by the host for every record
    /// of this batch: one host call the first time, the same view after; it lives until
    /// processBatch returns (nothing to free). Failed with internal/"fields" when the host
    /// refuses (nothing declared).
    pub fn fields(self: *Batch) Failure!*const Fields {
        if (self.fields_ == null) self.fields_ = try Fields.fetch();
        return &self.fields_.?;
    }

    /// The fastest emit: append record i's output value to the returned buffer, then call
    /// emitEnd(i). The value lands in the batch's one value buffer (nothing allocated per
    /// record); key and timestamp are the input's. One begin/end pair at a time.
    pub fn emitBegin(self: *Batch) *Buf {
        if (self.values_.cap == 0) self.values_.reserve(self.records.len * 32); // like the Rust SDK's Outcomes
        self.mark_ = self.values_.len;
        return &self.values_;
    }

    pub fn emitEnd(self: *Batch, i: usize) void {
        self.outcomes[i] = .{ .tag = outcome_span, .val = .{ .span = .{ .start = @intCast(self.mark_), .len = @intCast(self.values_.len - self.mark_) } } };
    }

    /// Emit one record whose value is the buffer's contents (moved; the buffer is reset).
    pub fn emitValue(self: *Batch, i: usize, value: *Buf) void {
        var r = std.mem.zeroes(RecordOut);
        r.value = .{ .is_some = true, .val = value.take() };
        self.emit(i, r);
    }

    /// Emit one prepared record (its fields move).
    pub fn emit(self: *Batch, i: usize, record: RecordOut) void {
        setEmit(&self.outcomes[i], record);
    }

    /// Re-emit the input record unchanged (value and headers copied; the host keeps its key).
    pub fn pass(self: *Batch, i: usize) void {
        const in = &self.records[i];
        var r = std.mem.zeroes(RecordOut);
        if (recordValue(in)) |v| r.value = .{ .is_some = true, .val = list(dupe(v)) };
        const hs = alloc(Header, in.headers.len);
        for (bytes(in.headers), 0..) |h, j| hs[j] = .{ .key = cString(bytes(h.key)), .value = list(dupe(bytes(h.value))) };
        r.headers = .{ .ptr = if (hs.len == 0) null else hs.ptr, .len = hs.len };
        self.emit(i, r);
    }

    pub fn drop(self: *Batch, i: usize) void {
        self.outcomes[i] = .{ .tag = outcome_drop, .val = undefined };
    }

    /// Fail record i with `err` (ownership moves).
    pub fn fail(self: *Batch, i: usize, err: Error) void {
        setFail(&self.outcomes[i], err);
    }

    fn deinit(self: *Batch) void {
        if (self.owned_) |owned| {
            for (owned) |o| if (o) |s| freeSlice(s);
            freeSlice(owned);
        }
        if (self.keys_) |k| freeSlice(k);
        if (self.fields_) |*f| f.deinit();
        self.values_.deinit();
    }
};

fn setEmit(o: *Outcome, record: RecordOut) void {
    const one = alloc(RecordOut, 1);
    one[0] = record;
    o.* = .{ .tag = outcome_emit, .val = .{ .emit = .{ .ptr = one.ptr, .len = 1 } } };
}

fn setFail(o: *Outcome, err: Error) void {
    o.* = .{ .tag = outcome_fail, .val = .{ .fail = err.raw } };
}

/// Settles a call's outcomes after the plugin returned: unset ones become
/// fail(internal, "no-outcome").
fn settleOutcomes(outcomes: []Outcome) void {
    for (outcomes) |*o| if (o.tag == outcome_unset) setFail(o, internal("no-outcome", "the plugin set no outcome for this record"));
}

fn recordOutFree(r: *RecordOut) void {
    if (r.key.is_some) c.plugin_list_u8_free(&r.key.val);
    if (r.value.is_some) c.plugin_list_u8_free(&r.value.val);
    for (bytes(r.headers)) |*h| c.arkflow_plugin_types_header_free(h);
    if (r.headers.len != 0) std.c.free(@ptrCast(r.headers.ptr));
    if (r.output.is_some) c.plugin_string_free(&r.output.val);
}

fn outcomeFree(o: *Outcome) void {
    switch (o.tag) {
        outcome_emit => {
            for (bytes(o.val.emit)) |*r| recordOutFree(r);
            if (o.val.emit.len != 0) std.c.free(@ptrCast(o.val.emit.ptr));
        },
        outcome_fail => c.arkflow_plugin_types_error_free(&o.val.fail),
        else => {},
    }
}

/// Frees the outcomes a failed call had set, and the array.
fn dropOutcomes(outcomes: []Outcome) void {
    for (outcomes) |*o| if (o.tag != outcome_unset) outcomeFree(o);
    freeSlice(outcomes);
}

/// Item i of a column as an option view into its data.
fn columnItem(col: *const c.arkflow_plugin_types_column_t, i: usize) OptBytes {
    var o = std.mem.zeroes(OptBytes);
    if (i >= col.ends.len) return o;
    if (col.valid.len != 0 and (col.valid.ptr[i / 8] >> @intCast(i % 8)) & 1 == 0) return o;
    const start: usize = if (i == 0) 0 else col.ends.ptr[i - 1];
    const end: usize = col.ends.ptr[i];
    if (end < start or end > col.data.len) return o;
    o.is_some = true;
    o.val = .{ .ptr = if (end == start) null else col.data.ptr + start, .len = end - start };
    return o;
}

/// Record views of a batch; `headers` receives the one array their header lists point into.
fn recordViews(b: *const c.arkflow_plugin_types_batch_t, n: usize, headers: *[]Header) []Record {
    const recs = alloc(Record, n);
    const h = b.headers.len;
    headers.* = alloc(Header, h);
    for (0..h) |j| headers.*[j] = b.headers.ptr[j].f1;
    var at: usize = 0;
    for (recs, 0..) |*r, i| {
        r.key = columnItem(&b.keys, i);
        r.value = columnItem(&b.values, i);
        r.timestamp_ms = if (i < b.timestamps.len) b.timestamps.ptr[i] else 0;
        r.partition = if (i < b.partitions.len) b.partitions.ptr[i] else 0;
        r.offset = if (i < b.offsets.len) b.offsets.ptr[i] else 0;
        while (at < h and b.headers.ptr[at].f0 < i) at += 1;
        const from = at;
        while (at < h and b.headers.ptr[at].f0 == i) at += 1;
        r.headers = .{ .ptr = if (at > from) headers.*.ptr + from else null, .len = at - from };
    }
    return recs;
}

/// A column being packed (buffers sized up front).
const ColBuf = struct {
    data: []u8,
    ends: []u32,
    valid: []u8,
    n: usize = 0,
    used: usize = 0,
    absent: bool = false,

    fn init(items: usize, nbytes: usize) ColBuf {
        const v = alloc(u8, (items + 7) / 8);
        @memset(v, 0);
        return .{ .data = alloc(u8, nbytes), .ends = alloc(u32, items), .valid = v };
    }
    fn push(self: *ColBuf, item: OptBytes) void {
        if (item.is_some) {
            const src = bytes(item.val);
            @memcpy(self.data[self.used..][0..src.len], src);
            self.used += src.len;
            self.valid[self.n / 8] |= @as(u8, 1) << @intCast(self.n % 8);
        } else self.absent = true;
        self.ends[self.n] = @intCast(self.used);
        self.n += 1;
    }
    fn finish(self: *ColBuf) c.arkflow_plugin_types_column_t {
        var col = std.mem.zeroes(c.arkflow_plugin_types_column_t);
        col.data = .{ .ptr = if (self.data.len == 0) null else self.data.ptr, .len = self.used };
        col.ends = .{ .ptr = if (self.n == 0) null else self.ends.ptr, .len = self.n };
        if (self.absent) {
            col.valid = .{ .ptr = if (self.valid.len == 0) null else self.valid.ptr, .len = self.valid.len };
        } else freeSlice(self.valid);
        return col;
    }
};

/// Packs a successful call's outcomes (unset ones become fail(internal, "no-outcome")) into
/// `ret`; headers, output names and errors move there (and the span buffer, when the values can
/// be sent as they lie in it), the rest is freed with the array.
fn packOutcomes(outcomes: []Outcome, spans: ?*Buf, ret: *c.arkflow_plugin_types_outcomes_t) void {
    settleOutcomes(outcomes);
    var m: usize = 0;
    var nbytes: usize = 0;
    var kbytes: usize = 0;
    var keys: usize = 0;
    var ts: usize = 0;
    var hs: usize = 0;
    var routes: usize = 0;
    var fails: usize = 0;
    var one_each = true;
    // direct: every emitted value is a span and they lie back to back in input order, so the
    // span buffer itself becomes the reply's value data (no copy).
    var direct = spans != null;
    for (outcomes) |*o| {
        if (o.tag == outcome_fail) fails += 1;
        if (o.tag == outcome_span) {
            if (o.val.span.start != nbytes) direct = false;
            m += 1;
            nbytes += o.val.span.len;
            continue;
        }
        if (o.tag != outcome_emit or o.val.emit.len != 1) one_each = false;
        if (o.tag != outcome_emit) continue;
        direct = false;
        for (bytes(o.val.emit)) |*r| {
            m += 1;
            if (r.value.is_some) nbytes += r.value.val.len;
            if (r.key.is_some) {
                keys += 1;
                kbytes += r.key.val.len;
            }
            if (r.timestamp_ms.is_some) ts += 1;
            hs += r.headers.len;
            if (r.output.is_some) routes += 1;
        }
    }
    if (direct and spans.?.len != nbytes) direct = false; // bytes of an emitBegin left unended
    ret.* = std.mem.zeroes(c.arkflow_plugin_types_outcomes_t);
    var values = if (direct) ColBuf{ .data = &.{}, .ends = alloc(u32, m), .valid = &.{} } else ColBuf.init(m, nbytes);
    var kcol = ColBuf.init(if (keys != 0) m else 0, kbytes);
    const sources = alloc(u32, if (one_each) 0 else m);
    const tss = alloc(c.plugin_tuple2_u32_s64_t, ts);
    const hss = alloc(c.arkflow_plugin_types_tuple2_u32_header_t, hs);
    const outs = alloc(c.plugin_tuple2_u32_string_t, routes);
    const failed = alloc(c.arkflow_plugin_types_tuple2_u32_error_t, fails);
    var k: usize = 0;
    var nts: usize = 0;
    var nhs: usize = 0;
    var nout: usize = 0;
    var nfail: usize = 0;
    for (outcomes, 0..) |*o, i| {
        if (o.tag == outcome_fail) {
            failed[nfail] = .{ .f0 = @intCast(i), .f1 = o.val.fail };
            nfail += 1;
            continue;
        }
        if (o.tag == outcome_span) {
            if (direct) {
                values.ends[values.n] = o.val.span.start + o.val.span.len;
                values.n += 1;
            } else {
                const arena = spans.?;
                const v = if (o.val.span.len == 0) &[_]u8{} else arena.ptr.?[o.val.span.start..][0..o.val.span.len];
                values.push(.{ .is_some = true, .val = list(v) });
            }
            if (keys != 0) kcol.push(std.mem.zeroes(OptBytes));
            if (!one_each) sources[k] = @intCast(i);
            k += 1;
            continue;
        }
        if (o.tag != outcome_emit) continue;
        for (bytes(o.val.emit)) |*r| {
            values.push(r.value);
            if (keys != 0) kcol.push(r.key);
            if (!one_each) sources[k] = @intCast(i);
            if (r.timestamp_ms.is_some) {
                tss[nts] = .{ .f0 = @intCast(k), .f1 = r.timestamp_ms.val };
                nts += 1;
            }
            for (bytes(r.headers)) |h| {
                hss[nhs] = .{ .f0 = @intCast(k), .f1 = h };
                nhs += 1;
            }
            if (r.headers.len != 0) std.c.free(@ptrCast(r.headers.ptr));
            r.headers = .{ .ptr = null, .len = 0 }; // moved
            if (r.output.is_some) {
                outs[nout] = .{ .f0 = @intCast(k), .f1 = r.output.val };
                nout += 1;
                r.output.is_some = false; // moved
            }
            recordOutFree(r);
            k += 1;
        }
        if (o.val.emit.len != 0) std.c.free(@ptrCast(o.val.emit.ptr));
    }
    if (direct) {
        ret.values = std.mem.zeroes(c.arkflow_plugin_types_column_t);
        ret.values.data = spans.?.take(); // moved: the generated glue frees it
        ret.values.ends = .{ .ptr = if (m == 0) null else values.ends.ptr, .len = m };
    } else ret.values = values.finish();
    if (keys != 0) ret.keys = kcol.finish() else freeSlice(kcol.valid);
    ret.sources = .{ .ptr = if (sources.len == 0) null else sources.ptr, .len = sources.len };
    ret.timestamps = .{ .ptr = if (ts == 0) null else tss.ptr, .len = ts };
    ret.headers = .{ .ptr = if (hs == 0) null else hss.ptr, .len = hs };
    ret.outputs = .{ .ptr = if (routes == 0) null else outs.ptr, .len = routes };
    ret.failed = .{ .ptr = if (fails == 0) null else failed.ptr, .len = fails };
    freeSlice(outcomes);
}

// =================================== typed fields ===================================

// The `fields` import: the plugin declares the top-level JSON fields it reads (declareFields, in
// init) and the host decodes them for every record of a batch into typed columns
// (Batch.fields): no JSON is parsed in the guest. The columns are views over the lifted buffers
// (nothing copied, nothing allocated per record). A plugin that never declares does not import
// arkflow:plugin/fields (the linker drops the unused import).

/// The type a field is read as (WIT `field-type`): boolean (JSON true/false), int64 (a JSON
/// integer, no fraction or exponent, within the i64 range), float64 (any JSON number, as the
/// nearest f64), utf8 (a JSON string, escapes decoded).
pub const FieldType = enum(u8) {
    boolean = c.ARKFLOW_PLUGIN_FIELDS_FIELD_TYPE_BOOLEAN,
    int64 = c.ARKFLOW_PLUGIN_FIELDS_FIELD_TYPE_INT64,
    float64 = c.ARKFLOW_PLUGIN_FIELDS_FIELD_TYPE_FLOAT64,
    utf8 = c.ARKFLOW_PLUGIN_FIELDS_FIELD_TYPE_UTF8,
};

/// One field to read: a top-level member name of the records' JSON objects, and its type.
pub const Field = struct { name: []const u8, type: FieldType };

// The declaration in force (a copy: names back to back in one buffer), in the host's column order.
var declared_fields: []Field = &.{};
var declared_names: []u8 = &.{};

/// Declares the fields `Batch.fields` returns, replacing an earlier declaration; call it in init
/// (not while a batch's `Fields` is in use: they look columns up in the declaration).
/// The host checks the list (at most 64 fields, names non-empty and unique): Failed with
/// config/"bad-fields" and the host's reason otherwise (the earlier declaration stays).
///
///     try ak.declareFields(&.{ .{ .name = "user", .type = .utf8 }, .{ .name = "n", .type = .int64 } });
pub fn declareFields(list_: []const Field) Failure!void {
    const arg = alloc(c.arkflow_plugin_fields_field_t, list_.len);
    defer freeSlice(arg);
    var total: usize = 0;
    for (list_, 0..) |f, i| {
        arg[i] = .{ .name = .{ .ptr = @constCast(f.name.ptr), .len = f.name.len }, .type = @intFromEnum(f.type) };
        total += f.name.len;
    }
    var l: c.arkflow_plugin_fields_list_field_t = .{ .ptr = if (arg.len == 0) null else arg.ptr, .len = arg.len };
    var err: c.plugin_string_t = undefined;
    if (!c.arkflow_plugin_fields_declare(&l, &err)) {
        const e = Error.init(.config, "bad-fields", bytes(err));
        c.plugin_string_free(&err);
        return fail(e);
    }
    const fs = alloc(Field, list_.len);
    const names = alloc(u8, total);
    var at: usize = 0;
    for (list_, 0..) |f, i| {
        @memcpy(names[at..][0..f.name.len], f.name);
        fs[i] = .{ .name = names[at..][0..f.name.len], .type = f.type };
        at += f.name.len;
    }
    freeSlice(declared_fields);
    freeSlice(declared_names);
    declared_fields = fs;
    declared_names = names;
}

/// The fields declared now (what `declareFields` last accepted).
pub fn declaredFields() []const Field {
    return declared_fields;
}

/// Bit i of an LSB-first bitmap (false past its end).
inline fn bitAt(bits: []const u8, i: usize) bool {
    return i / 8 < bits.len and (bits[i / 8] >> @intCast(i % 8)) & 1 != 0;
}

/// An int64 column: `get(i)` is record i's value, or null where the record lacks the field
/// (missing, `null`, no value, or mismatched). `values[i]` is a default where `valid` is clear.
pub const Int64Column = struct {
    valid: []const u8 = &.{},
    values: []const i64 = &.{},
    pub fn get(self: Int64Column, i: usize) ?i64 {
        return if (bitAt(self.valid, i) and i < self.values.len) self.values[i] else null;
    }
};

/// A float64 column (as Int64Column).
pub const Float64Column = struct {
    valid: []const u8 = &.{},
    values: []const f64 = &.{},
    pub fn get(self: Float64Column, i: usize) ?f64 {
        return if (bitAt(self.valid, i) and i < self.values.len) self.values[i] else null;
    }
};

/// A boolean column: `values` is a bitmap like `valid`.
pub const BooleanColumn = struct {
    valid: []const u8 = &.{},
    values: []const u8 = &.{},
    pub fn get(self: BooleanColumn, i: usize) ?bool {
        return if (bitAt(self.valid, i)) bitAt(self.values, i) else null;
    }
};

/// A utf8 column in Arrow's layout: item i is data[ends[i-1]..ends[i]] (ends[-1] = 0). `get(i)`
/// is a view into `data` (valid until processBatch returns); the host sends only valid UTF-8.
pub const Utf8Column = struct {
    valid: []const u8 = &.{},
    data: []const u8 = &.{},
    ends: []const u32 = &.{},
    pub fn get(self: Utf8Column, i: usize) ?[]const u8 {
        if (!bitAt(self.valid, i) or i >= self.ends.len) return null;
        const start: usize = if (i == 0) 0 else self.ends[i - 1];
        const end: usize = self.ends[i];
        if (end < start or end > self.data.len) return null;
        return self.data[start..end];
    }
};

/// A record whose value did not fit the declaration, and the host's reason (which names the
/// field).
pub const Mismatch = struct { index: usize, reason: []const u8 };

/// The declared fields of one batch (`Batch.fields`): one column per declared field, looked up by
/// name and type (`int64`, `float64`, `boolean`, `utf8`; look a column up once per batch, not per
/// record), and the records that did not fit the declaration (`mismatch`). Asking for a name not
/// declared with that type is Failed with internal/"undeclared-field".
pub const Fields = struct {
    raw: c.arkflow_plugin_fields_decoded_t,
    declared: []const Field,
    owned: bool = true,

    fn fetch() Failure!Fields {
        var raw: c.arkflow_plugin_fields_decoded_t = undefined;
        var err: c.plugin_string_t = undefined;
        if (!c.arkflow_plugin_fields_columns(&raw, &err)) {
            const e = Error.init(.internal, "fields", bytes(err));
            c.plugin_string_free(&err);
            return fail(e);
        }
        return .{ .raw = raw, .declared = declared_fields };
    }

    /// What the host would return for `declared` (borrowed, not freed: for unit tests of plugin
    /// code).
    pub fn fromRaw(raw: c.arkflow_plugin_fields_decoded_t, declared: []const Field) Fields {
        return .{ .raw = raw, .declared = declared, .owned = false };
    }

    fn column(self: *const Fields, name: []const u8, t: FieldType) Failure!*const c.arkflow_plugin_fields_typed_column_t {
        for (self.declared, 0..) |f, j| {
            if (f.type != t or !std.mem.eql(u8, f.name, name)) continue;
            if (j >= self.raw.columns.len) break;
            const col = &bytes(self.raw.columns)[j];
            if (col.values.tag != @intFromEnum(t)) break;
            return col;
        }
        var m = Buf{};
        m.appendSlice("field `");
        m.appendSlice(name);
        m.appendSlice("` was not declared as ");
        m.appendSlice(@tagName(t));
        m.appendSlice(" (ak.declareFields)");
        return fail(errorFromBuf(.internal, "undeclared-field", &m));
    }

    /// The int64 column of the field `name`.
    pub fn int64(self: *const Fields, name: []const u8) Failure!Int64Column {
        const col = try self.column(name, .int64);
        return .{ .valid = bytes(col.valid), .values = bytes(col.values.val.int64) };
    }

    /// The float64 column of the field `name`.
    pub fn float64(self: *const Fields, name: []const u8) Failure!Float64Column {
        const col = try self.column(name, .float64);
        return .{ .valid = bytes(col.valid), .values = bytes(col.values.val.float64) };
    }

    /// The boolean column of the field `name`.
    pub fn boolean(self: *const Fields, name: []const u8) Failure!BooleanColumn {
        const col = try self.column(name, .boolean);
        return .{ .valid = bytes(col.valid), .values = bytes(col.values.val.boolean) };
    }

    /// The utf8 column of the field `name`.
    pub fn utf8(self: *const Fields, name: []const u8) Failure!Utf8Column {
        const col = try self.column(name, .utf8);
        const v = &col.values.val.utf8;
        return .{ .valid = bytes(col.valid), .data = bytes(v.data), .ends = bytes(v.ends) };
    }

    /// The reason record i did not fit the declaration (its value is not a JSON object, or a
    /// declared field holds another type), or null. A binary search of the (ascending) list.
    pub fn mismatch(self: *const Fields, i: usize) ?[]const u8 {
        const ms = bytes(self.raw.mismatched);
        var lo: usize = 0;
        var hi: usize = ms.len;
        while (lo < hi) {
            const mid = lo + (hi - lo) / 2;
            if (ms[mid].f0 == i) return bytes(ms[mid].f1);
            if (ms[mid].f0 < i) lo = mid + 1 else hi = mid;
        }
        return null;
    }

    /// How many records did not fit the declaration.
    pub fn mismatchCount(self: *const Fields) usize {
        return self.raw.mismatched.len;
    }

    /// The k-th of them (k < mismatchCount()), in ascending record order.
    pub fn mismatchAt(self: *const Fields, k: usize) Mismatch {
        const m = bytes(self.raw.mismatched)[k];
        return .{ .index = m.f0, .reason = bytes(m.f1) };
    }

    /// Frees what the host returned (Batch.fields does it for you).
    pub fn deinit(self: *Fields) void {
        if (self.owned) c.arkflow_plugin_fields_decoded_free(&self.raw);
        self.owned = false;
    }
};

// ===================================== timers =====================================

pub const Timer = c.arkflow_plugin_types_timer_t;
pub const TimerContext = c.arkflow_plugin_types_timer_context_t;

/// The clock a timer follows: `event` fires once the watermark reaches its time, `processing`
/// once the host's wall clock has passed it.
pub const TimeDomain = enum(u8) { event = 0, processing = 1 };

/// register-timer: a timer for `key` at `time_ms` on `domain`'s clock, in the key group of the
/// current call, staged with its state writes (class state "no-scope" outside a call).
pub fn registerTimer(key: []const u8, time_ms: i64, domain: TimeDomain) Failure!void {
    var k = list(key);
    var se: c.arkflow_plugin_state_state_error_t = undefined;
    if (!c.arkflow_plugin_timers_register_timer(&k, time_ms, @intFromEnum(domain), &se)) return stateFail(&se);
}

/// delete-timer: whether the timer was registered.
pub fn deleteTimer(key: []const u8, time_ms: i64, domain: TimeDomain) Failure!bool {
    var k = list(key);
    var present: bool = false;
    var se: c.arkflow_plugin_state_state_error_t = undefined;
    if (!c.arkflow_plugin_timers_delete_timer(&k, time_ms, @intFromEnum(domain), &present, &se)) return stateFail(&se);
    return present;
}

/// The stream's watermark (minInt(i64) before the first); an event at or before it is late.
pub fn watermark() i64 {
    return c.arkflow_plugin_timers_watermark();
}

/// The host's wall clock, milliseconds since the Unix epoch.
pub fn now() i64 {
    return c.arkflow_plugin_timers_now();
}

/// One on-timers call: the due timers of one key group, in time order, and one outcome per
/// timer (emit / drop / fail; an emitted record without a key is keyed by the timer's key).
pub const Timers = struct {
    ctx: *const TimerContext,
    fired: []const Timer,
    outcomes: []Outcome,

    /// The key of timer i.
    pub fn key(self: *const Timers, i: usize) []const u8 {
        return bytes(self.fired[i].key);
    }
    pub fn emit(self: *Timers, i: usize, record: RecordOut) void {
        setEmit(&self.outcomes[i], record);
    }
    pub fn drop(self: *Timers, i: usize) void {
        self.outcomes[i] = .{ .tag = outcome_drop, .val = undefined };
    }
    pub fn fail(self: *Timers, i: usize, err: Error) void {
        setFail(&self.outcomes[i], err);
    }
};

// ===================================== state =====================================

/// An 8-byte little-endian i64 (the `increment` encoding).
pub fn encodeI64(v: i64) [8]u8 {
    return std.mem.toBytes(std.mem.nativeToLittle(i64, v));
}

pub fn decodeI64(b: []const u8) ?i64 {
    if (b.len != 8) return null;
    return std.mem.readInt(i64, b[0..8], .little);
}

/// A page of scan-prefix (free with deinit).
pub const ScanPage = struct {
    raw: c.arkflow_plugin_state_scan_page_t,

    pub fn len(self: *const ScanPage) usize {
        return self.raw.entries.len;
    }
    pub fn key(self: *const ScanPage, i: usize) []const u8 {
        return bytes(self.raw.entries.ptr[i].f0);
    }
    pub fn value(self: *const ScanPage, i: usize) []const u8 {
        return bytes(self.raw.entries.ptr[i].f1);
    }
    /// Pass as start_after to get the next page; null on the last page.
    pub fn next(self: *const ScanPage) ?[]const u8 {
        return if (self.raw.next.is_some) bytes(self.raw.next.val) else null;
    }
    pub fn deinit(self: *ScanPage) void {
        c.arkflow_plugin_state_scan_page_free(&self.raw);
    }
};

/// The WIT resource `store`. Open in init and keep it.
pub const Store = struct {
    handle: c.arkflow_plugin_state_own_store_t,

    fn borrow(self: Store) c.arkflow_plugin_state_borrow_store_t {
        return c.arkflow_plugin_state_borrow_store(self.handle);
    }

    /// open: "default" or one of the stream's custom_keys.
    pub fn open(name: []const u8) Failure!Store {
        var n: c.plugin_string_t = .{ .ptr = @constCast(name.ptr), .len = name.len };
        var s: Store = undefined;
        var se: c.arkflow_plugin_state_state_error_t = undefined;
        if (!c.arkflow_plugin_state_static_store_open(&n, &s.handle, &se)) return stateFail(&se);
        return s;
    }

    /// get: the value (owned, free with freeSlice) or null when absent/expired.
    pub fn get(self: Store, key: []const u8) Failure!?[]u8 {
        var k = list(key);
        var out: c.plugin_option_list_u8_t = undefined;
        var se: c.arkflow_plugin_state_state_error_t = undefined;
        if (!c.arkflow_plugin_state_method_store_get(self.borrow(), &k, &out, &se)) return stateFail(&se);
        return if (out.is_some) bytes(out.val) else null;
    }

    pub fn put(self: Store, key: []const u8, value: []const u8) Failure!void {
        var k = list(key);
        var v = list(value);
        var se: c.arkflow_plugin_state_state_error_t = undefined;
        if (!c.arkflow_plugin_state_method_store_put(self.borrow(), &k, &v, &se)) return stateFail(&se);
    }

    /// delete: whether the key was present.
    pub fn delete(self: Store, key: []const u8) Failure!bool {
        var k = list(key);
        var present: bool = false;
        var se: c.arkflow_plugin_state_state_error_t = undefined;
        if (!c.arkflow_plugin_state_method_store_delete(self.borrow(), &k, &present, &se)) return stateFail(&se);
        return present;
    }

    /// get-many: one result per key, in order (owned; free with freeMany).
    pub fn getMany(self: Store, keys: []const []const u8) Failure![]?[]u8 {
        const ls = alloc(c.plugin_list_u8_t, keys.len);
        defer freeSlice(ls);
        for (keys, 0..) |k, i| ls[i] = list(k);
        var arg: c.plugin_list_list_u8_t = .{ .ptr = ls.ptr, .len = keys.len };
        var out: c.plugin_list_option_list_u8_t = undefined;
        var se: c.arkflow_plugin_state_state_error_t = undefined;
        if (!c.arkflow_plugin_state_method_store_get_many(self.borrow(), &arg, &out, &se)) return stateFail(&se);
        const vals = alloc(?[]u8, out.len);
        for (bytes(out), 0..) |o, i| vals[i] = if (o.is_some) bytes(o.val) else null;
        if (out.len != 0) std.c.free(@ptrCast(out.ptr));
        return vals;
    }

    /// put-many: keys[i] -> values[i].
    pub fn putMany(self: Store, keys: []const []const u8, values: []const []const u8) Failure!void {
        const es = alloc(c.plugin_tuple2_list_u8_list_u8_t, keys.len);
        defer freeSlice(es);
        for (keys, values, 0..) |k, v, i| es[i] = .{ .f0 = list(k), .f1 = list(v) };
        return putEntries(self, es);
    }

    /// get-column: all keys in one buffer, one value (or null) per key back; values are copies
    /// the caller owns (free each with freeSlice, and the array).
    pub fn getColumn(self: Store, keys: []const []const u8) Failure![]?[]u8 {
        var total: usize = 0;
        for (keys) |k| total += k.len;
        var kb = ColBuf.init(keys.len, total);
        for (keys) |k| kb.push(.{ .is_some = true, .val = list(k) });
        var arg = kb.finish();
        defer c.arkflow_plugin_types_column_free(&arg);
        var out: c.arkflow_plugin_types_column_t = undefined;
        var se: c.arkflow_plugin_state_state_error_t = undefined;
        if (!c.arkflow_plugin_state_method_store_get_column(self.borrow(), &arg, &out, &se)) return stateFail(&se);
        defer c.arkflow_plugin_types_column_free(&out);
        const vals = alloc(?[]u8, out.ends.len);
        for (vals, 0..) |*v, i| {
            const item = columnItem(&out, i);
            v.* = if (item.is_some) dupe(bytes(item.val)) else null;
        }
        return vals;
    }

    /// put-column: keys[i] -> values[i], each side one buffer.
    pub fn putColumn(self: Store, keys: []const []const u8, values: []const []const u8) Failure!void {
        var kt: usize = 0;
        var vt: usize = 0;
        for (keys) |k| kt += k.len;
        for (values) |v| vt += v.len;
        var kb = ColBuf.init(keys.len, kt);
        var vb = ColBuf.init(values.len, vt);
        for (keys) |k| kb.push(.{ .is_some = true, .val = list(k) });
        for (values) |v| vb.push(.{ .is_some = true, .val = list(v) });
        var ka = kb.finish();
        var va = vb.finish();
        defer c.arkflow_plugin_types_column_free(&ka);
        defer c.arkflow_plugin_types_column_free(&va);
        var se: c.arkflow_plugin_state_state_error_t = undefined;
        if (!c.arkflow_plugin_state_method_store_put_column(self.borrow(), &ka, &va, &se)) return stateFail(&se);
    }

    fn putEntries(self: Store, es: []c.plugin_tuple2_list_u8_list_u8_t) Failure!void {
        var arg: c.plugin_list_tuple2_list_u8_list_u8_t = .{ .ptr = es.ptr, .len = es.len };
        var se: c.arkflow_plugin_state_state_error_t = undefined;
        if (!c.arkflow_plugin_state_method_store_put_many(self.borrow(), &arg, &se)) return stateFail(&se);
    }

    pub fn deleteMany(self: Store, keys: []const []const u8) Failure!void {
        const ls = alloc(c.plugin_list_u8_t, keys.len);
        defer freeSlice(ls);
        for (keys, 0..) |k, i| ls[i] = list(k);
        var arg: c.plugin_list_list_u8_t = .{ .ptr = ls.ptr, .len = keys.len };
        var se: c.arkflow_plugin_state_state_error_t = undefined;
        if (!c.arkflow_plugin_state_method_store_delete_many(self.borrow(), &arg, &se)) return stateFail(&se);
    }

    /// increment: adds delta to the counter at key (absent = 0); returns the new value.
    pub fn increment(self: Store, key: []const u8, delta: i64) Failure!i64 {
        var k = list(key);
        var out: i64 = 0;
        var se: c.arkflow_plugin_state_state_error_t = undefined;
        if (!c.arkflow_plugin_state_method_store_increment(self.borrow(), &k, delta, &out, &se)) return stateFail(&se);
        return out;
    }

    /// scan-prefix: up to `limit` (<= 1024) entries whose key starts with prefix, after start_after.
    pub fn scanPrefix(self: Store, prefix: []const u8, start_after: ?[]const u8, limit: u32) Failure!ScanPage {
        var p = list(prefix);
        var after = list(start_after orelse "");
        var page: ScanPage = undefined;
        var se: c.arkflow_plugin_state_state_error_t = undefined;
        if (!c.arkflow_plugin_state_method_store_scan_prefix(self.borrow(), &p, if (start_after != null) &after else null, limit, &page.raw, &se))
            return stateFail(&se);
        return page;
    }
};

/// Frees a getMany result.
pub fn freeMany(vals: []?[]u8) void {
    for (vals) |v| if (v) |s| freeSlice(s);
    freeSlice(vals);
}

/// Values of a set of keys of one store plus the writes made to them, for one batch: one
/// get-column to load, in-memory updates, one put-column to flush (first-write order).
///
/// Like the Rust SDK's StateCache (plugins/sdk/src/state.rs), nothing is allocated per key:
/// slot keys live back to back in one buffer (which, with `key_ends`, is also the get-column
/// request), values in another (initially the get-column reply's data buffer, taken over),
/// found through an open-addressing table of slot numbers (a power of two, at least twice the
/// slots).
pub const StateCache = struct {
    const absent: u32 = std.math.maxInt(u32);
    const Slot = struct {
        hash: u64,
        val_start: u32 = 0,
        val_len: u32 = absent,
        dirty: bool = false,
    };

    keys_buf: Buf = .{},
    key_ends: []u32 = &.{},
    slots: []Slot = &.{},
    n: usize = 0,
    vals: Buf = .{},
    table: []u32 = &.{}, // slot index + 1; 0 = empty
    writes: []u32 = &.{},
    n_writes: usize = 0,
    /// The slot of each key loaded, in load order (duplicates too): writes in that order find
    /// their slot without hashing (see slotNext).
    seq: []u32 = &.{},
    cursor: usize = 0,

    fn hashOf(k: []const u8) u64 {
        const K: u64 = 0x517cc1b727220a95;
        var h: u64 = 0;
        var i: usize = 0;
        while (i + 8 <= k.len) : (i += 8) h = (std.math.rotl(u64, h, 5) ^ std.mem.readInt(u64, k[i..][0..8], .little)) *% K;
        while (i < k.len) : (i += 1) h = (std.math.rotl(u64, h, 5) ^ k[i]) *% K;
        return h ^ (h >> 29);
    }

    fn keyStart(self: *const StateCache, i: usize) usize {
        return if (i == 0) 0 else self.key_ends[i - 1];
    }

    fn keyAt(self: *const StateCache, i: usize) []const u8 {
        return self.keys_buf.items()[self.keyStart(i)..self.key_ends[i]];
    }

    /// a == b for equal lengths, a word at a time (keys are short).
    inline fn bytesEq(a: []const u8, b: []const u8) bool {
        var i: usize = 0;
        const n = a.len;
        while (i + 8 <= n) : (i += 8) {
            if (std.mem.readInt(u64, a[i..][0..8], .little) != std.mem.readInt(u64, b[i..][0..8], .little)) return false;
        }
        const r = n - i;
        if (r >= 4) {
            return std.mem.readInt(u32, a[i..][0..4], .little) == std.mem.readInt(u32, b[i..][0..4], .little) and
                std.mem.readInt(u32, a[n - 4 ..][0..4], .little) == std.mem.readInt(u32, b[n - 4 ..][0..4], .little);
        }
        while (i < n) : (i += 1) if (a[i] != b[i]) return false;
        return true;
    }

    /// Whether slot i's key is k.
    fn keyIs(self: *const StateCache, i: usize, k: []const u8) bool {
        const start = self.keyStart(i);
        return self.key_ends[i] - start == k.len and bytesEq(self.keys_buf.items()[start..self.key_ends[i]], k);
    }

    fn valueAt(self: *const StateCache, i: usize) ?[]u8 {
        const s = self.slots[i];
        if (s.val_len == absent) return null;
        return self.vals.items()[s.val_start..][0..s.val_len];
    }

    /// The slot of k, or the empty table position where it would go.
    fn find(self: *const StateCache, k: []const u8, h: u64) union(enum) { found: usize, empty: usize } {
        const mask = self.table.len - 1;
        var j: usize = @intCast(h & mask);
        while (self.table[j] != 0) : (j = (j + 1) & mask) {
            const i = self.table[j] - 1;
            if (self.slots[i].hash == h and self.keyIs(i, k)) return .{ .found = i };
        }
        return .{ .empty = j };
    }

    fn realloc(comptime T: type, old: []T, cap: usize) []T {
        const p = std.c.realloc(if (old.len == 0) null else @ptrCast(old.ptr), cap * @sizeOf(T)) orelse oom();
        return @as([*]T, @ptrCast(@alignCast(p)))[0..cap];
    }

    /// Room for `extra` more slots, and a table at least twice the slots (rebuilt when it grows).
    fn reserve(self: *StateCache, extra: usize) void {
        const need = self.n + extra;
        if (need > self.slots.len) {
            var cap: usize = if (self.slots.len == 0) 16 else self.slots.len * 2;
            while (cap < need) cap *= 2;
            self.slots = realloc(Slot, self.slots, cap);
            self.key_ends = realloc(u32, self.key_ends, cap);
        }
        if (need * 2 <= self.table.len) return;
        var tcap: usize = if (self.table.len == 0) 32 else self.table.len * 2;
        while (tcap < need * 2) tcap *= 2;
        freeSlice(self.table);
        self.table = alloc(u32, tcap);
        @memset(self.table, 0);
        const mask = tcap - 1;
        for (self.slots[0..self.n], 0..) |s, i| {
            var j: usize = @intCast(s.hash & mask);
            while (self.table[j] != 0) j = (j + 1) & mask;
            self.table[j] = @intCast(i + 1);
        }
    }

    fn lookup(self: *const StateCache, k: []const u8) ?usize {
        if (self.table.len == 0) return null;
        return switch (self.find(k, hashOf(k))) {
            .found => |i| i,
            .empty => null,
        };
    }

    fn slot(self: *StateCache, k: []const u8) usize {
        const h = hashOf(k);
        if (self.n + 1 > self.slots.len or (self.n + 1) * 2 > self.table.len) self.reserve(1);
        const j = switch (self.find(k, h)) {
            .found => |i| return i,
            .empty => |j| j,
        };
        const i = self.n;
        self.n += 1;
        self.table[j] = @intCast(i + 1);
        self.keys_buf.appendSlice(k);
        self.key_ends[i] = @intCast(self.keys_buf.len);
        self.slots[i] = .{ .hash = h };
        return i;
    }

    /// The slot of k for a write (created when new). Writes usually come in the order the keys
    /// were loaded (one per record), so the next loaded key's slot is tried first: a hit costs
    /// one key comparison instead of a hash and a probe.
    fn slotNext(self: *StateCache, k: []const u8) usize {
        if (self.cursor < self.seq.len) {
            const i = self.seq[self.cursor];
            if (self.keyIs(i, k)) {
                self.cursor += 1;
                return i;
            }
        }
        return self.slot(k);
    }

    fn mark(self: *StateCache, i: usize) void {
        if (self.slots[i].dirty) return;
        self.slots[i].dirty = true;
        if (self.n_writes == self.writes.len) self.writes = realloc(u32, self.writes, if (self.writes.len == 0) @max(16, self.slots.len) else self.writes.len * 2);
        self.writes[self.n_writes] = @intCast(i);
        self.n_writes += 1;
    }

    /// Sets slot i's value: in place when the length is unchanged, else appended.
    fn set(self: *StateCache, i: usize, value: []const u8) void {
        const s = &self.slots[i];
        if (s.val_len == value.len) {
            if (value.len == 0) return;
            const dst = self.vals.ptr.?[s.val_start..][0..value.len];
            if (dst.ptr != value.ptr) @memcpy(dst, value); // (not a put of its own value)
            return;
        }
        var v = value;
        const at = @intFromPtr(value.ptr);
        if (self.vals.ptr) |p| {
            const base = @intFromPtr(p);
            if (value.len != 0 and at >= base and at < base + self.vals.len) { // another key's value
                self.vals.reserve(value.len);
                v = self.vals.ptr.?[at - base ..][0..value.len];
            }
        }
        s.val_start = @intCast(self.vals.len);
        s.val_len = @intCast(value.len);
        self.vals.appendSlice(v);
    }

    /// Loads the distinct keys among `keys` (null entries skipped) with one get-column (none
    /// when there is no key).
    pub fn load(store: Store, keys: anytype) Failure!StateCache {
        var cache = StateCache{};
        errdefer cache.deinit();
        cache.reserve(keys.len);
        var total: usize = 0;
        for (keys) |k| {
            const key: ?[]const u8 = k;
            if (key) |kk| total += kk.len;
        }
        cache.keys_buf.reserve(total);
        const seq = alloc(u32, keys.len);
        var n_seq: usize = 0;
        for (keys) |k| {
            const key: ?[]const u8 = k;
            if (key) |kk| {
                seq[n_seq] = @intCast(cache.slot(kk));
                n_seq += 1;
            }
        }
        cache.seq = seq[0..n_seq];
        if (n_seq == 0) freeSlice(seq);
        if (cache.n == 0) return cache;
        var arg = std.mem.zeroes(c.arkflow_plugin_types_column_t);
        arg.data = list(cache.keys_buf.items());
        arg.ends = .{ .ptr = cache.key_ends.ptr, .len = cache.n };
        var out: c.arkflow_plugin_types_column_t = undefined;
        var se: c.arkflow_plugin_state_state_error_t = undefined;
        if (!c.arkflow_plugin_state_method_store_get_column(store.borrow(), &arg, &out, &se)) return stateFail(&se);
        defer c.arkflow_plugin_types_column_free(&out);
        if (out.ends.len != cache.n or (out.ends.len != 0 and out.ends.ptr[out.ends.len - 1] > out.data.len)) {
            var m = Buf{};
            m.appendSlice("get-column returned ");
            m.appendInt(@intCast(out.ends.len));
            m.appendSlice(" values for ");
            m.appendInt(@intCast(cache.n));
            m.appendSlice(" keys");
            return fail(errorFromBuf(.internal, "bad-get-column", &m));
        }
        if (out.data.len != 0) { // take the reply's buffer over
            cache.vals = .{ .ptr = out.data.ptr, .len = out.data.len, .cap = out.data.len };
            out.data = .{ .ptr = null, .len = 0 };
        }
        for (cache.slots[0..cache.n], 0..) |*s, i| {
            if (out.valid.len != 0 and (out.valid.ptr[i / 8] >> @intCast(i % 8)) & 1 == 0) continue;
            const start: u32 = if (i == 0) 0 else out.ends.ptr[i - 1];
            const end: u32 = out.ends.ptr[i];
            if (end < start) continue;
            s.val_start = start;
            s.val_len = end - start;
        }
        return cache;
    }

    /// The current value (null when absent or not loaded); valid until the next write to the
    /// cache (put / putI64 / increment of any key may move the value buffer), which may be a put
    /// of it.
    pub fn get(self: *const StateCache, k: []const u8) ?[]const u8 {
        return self.valueAt(self.lookup(k) orelse return null);
    }

    pub fn put(self: *StateCache, k: []const u8, value: []const u8) void {
        const i = self.slotNext(k);
        self.set(i, value);
        self.mark(i);
    }

    /// The i64 at k (null when absent), or Failed with not-a-counter.
    pub fn getI64(self: *const StateCache, k: []const u8) Failure!?i64 {
        const v = self.get(k) orelse return null;
        return decodeI64(v) orelse notACounter();
    }

    pub fn putI64(self: *StateCache, k: []const u8, v: i64) void {
        const b = encodeI64(v);
        self.put(k, &b);
    }

    /// increment in the cache (absent = 0, wrapping), in place: no allocation per call; or
    /// Failed with not-a-counter.
    pub fn increment(self: *StateCache, k: []const u8, delta: i64) Failure!i64 {
        const i = self.slotNext(k);
        const s = self.slots[i];
        var v = delta;
        if (s.val_len == 8) {
            const at = self.vals.ptr.?[s.val_start..][0..8];
            v = std.mem.readInt(i64, at, .little) +% delta;
            std.mem.writeInt(i64, at, v, .little);
        } else if (s.val_len != absent) {
            return notACounter();
        } else {
            self.set(i, &encodeI64(v));
        }
        self.mark(i);
        return v;
    }

    /// Writes every change with one put-column (no call when nothing changed). The keys are
    /// sent from the key buffer itself when every slot was written, in slot order.
    pub fn flush(self: *StateCache, store: Store) Failure!void {
        const n = self.n_writes;
        if (n == 0) return;
        const order = self.writes[0..n];
        var in_order = n == self.n;
        for (order, 0..) |si, w| {
            if (si != w) {
                in_order = false;
                break;
            }
        }
        var kb: ColBuf = undefined;
        var ka = std.mem.zeroes(c.arkflow_plugin_types_column_t);
        if (in_order) {
            ka.data = list(self.keys_buf.items());
            ka.ends = .{ .ptr = self.key_ends.ptr, .len = n };
        } else {
            var kt: usize = 0;
            for (order) |si| kt += self.key_ends[si] - self.keyStart(si);
            kb = ColBuf.init(n, kt);
            for (order) |si| kb.push(.{ .is_some = true, .val = list(self.keyAt(si)) });
            ka = kb.finish();
        }
        defer if (!in_order) c.arkflow_plugin_types_column_free(&ka);
        var vt: usize = 0;
        for (order) |si| vt += self.slots[si].val_len;
        var vb = ColBuf.init(n, vt);
        for (order) |si| {
            vb.push(.{ .is_some = true, .val = list(self.valueAt(si).?) });
            self.slots[si].dirty = false;
        }
        self.n_writes = 0;
        var va = vb.finish();
        defer c.arkflow_plugin_types_column_free(&va);
        var se: c.arkflow_plugin_state_state_error_t = undefined;
        if (!c.arkflow_plugin_state_method_store_put_column(store.borrow(), &ka, &va, &se)) return stateFail(&se);
    }

    pub fn deinit(self: *StateCache) void {
        self.keys_buf.deinit();
        self.vals.deinit();
        freeSlice(self.key_ends);
        freeSlice(self.slots);
        freeSlice(self.table);
        freeSlice(self.writes);
        freeSlice(self.seq);
        self.* = .{};
    }

    fn notACounter() Failure {
        var se = std.mem.zeroes(c.arkflow_plugin_state_state_error_t);
        se.tag = c.ARKFLOW_PLUGIN_STATE_STATE_ERROR_NOT_A_COUNTER;
        return fail(stateError(&se));
    }
};

// ================================= log and metrics =================================

pub fn log(level: Level, message: []const u8) void {
    var m: c.plugin_string_t = .{ .ptr = @constCast(message.ptr), .len = message.len };
    c.arkflow_plugin_log_log(@intFromEnum(level), &m);
}

/// log with std.fmt formatting (truncated at 4 KiB).
pub fn logf(level: Level, comptime fmt: []const u8, args: anytype) void {
    var tmp: [4096]u8 = undefined;
    const s = std.fmt.bufPrint(&tmp, fmt, args) catch tmp[0..];
    log(level, s);
}

pub const metrics = struct {
    fn name(n: []const u8) c.plugin_string_t {
        return .{ .ptr = @constCast(n.ptr), .len = n.len };
    }
    pub fn counterAdd(n: []const u8, delta: u64) void {
        var s = name(n);
        c.arkflow_plugin_metrics_counter_add(&s, delta);
    }
    pub fn gaugeSet(n: []const u8, v: f64) void {
        var s = name(n);
        c.arkflow_plugin_metrics_gauge_set(&s, v);
    }
    pub fn histogramRecord(n: []const u8, v: f64) void {
        var s = name(n);
        c.arkflow_plugin_metrics_histogram_record(&s, v);
    }
};

// ================================= the WIT exports =================================

/// Exports processor P (see the module docs) as arkflow:plugin/processor. Call once, from a
/// `comptime` block of the root file.
pub fn exportProcessor(comptime P: type) void {
    const G = struct {
        var instance: ?P = null;
        var config_raw: c.plugin_list_tuple2_string_string_t = .{ .ptr = null, .len = 0 };

        fn notInitialized() Error {
            return internal("not-initialized", "the host called the plugin before a successful init");
        }

        fn describe(ret: *c.arkflow_plugin_types_info_t) callconv(.c) void {
            const info: Info = P.info;
            ret.name = cString(info.name);
            ret.version = cString(info.version);
            ret.abi = cString(abi_version);
            const stores = alloc(c.plugin_string_t, info.state_stores.len);
            for (info.state_stores, 0..) |s, i| stores[i] = cString(s);
            ret.state_stores = .{ .ptr = stores.ptr, .len = stores.len };
            const formats = alloc(c.arkflow_plugin_types_store_format_t, info.state_formats.len);
            for (info.state_formats, 0..) |f, i| formats[i] = .{ .store = cString(f.store), .format = @intFromEnum(f.format) };
            ret.state_formats = .{ .ptr = formats.ptr, .len = formats.len };
            ret.key_by = if (info.key_by) |k| .{ .is_some = true, .val = cString(k) } else .{ .is_some = false, .val = .{ .ptr = null, .len = 0 } };
        }

        fn init(config: *c.plugin_list_tuple2_string_string_t, err: *c.arkflow_plugin_types_error_t) callconv(.c) bool {
            instance = null;
            c.plugin_list_tuple2_string_string_free(&config_raw);
            config_raw = config.*; // kept: Config slices point into it
            instance = P.init(.{ .raw = config_raw }) catch {
                err.* = takeError().raw;
                return false;
            };
            return true;
        }

        fn processBatch(
            ctx: *c.arkflow_plugin_types_batch_context_t,
            records: *c.exports_arkflow_plugin_processor_batch_t,
            ret: *c.exports_arkflow_plugin_processor_outcomes_t,
            err: *c.arkflow_plugin_types_error_t,
        ) callconv(.c) bool {
            defer c.exports_arkflow_plugin_processor_batch_free(records);
            const p = if (instance) |*i| i else {
                err.* = notInitialized().raw;
                return false;
            };
            const n = records.timestamps.len;
            var headers: []Header = undefined;
            const views = recordViews(records, n, &headers);
            defer freeSlice(views);
            defer freeSlice(headers);
            var batch = Batch{ .ctx = ctx, .records = views, .outcomes = alloc(Outcome, n) };
            defer batch.deinit();
            for (batch.outcomes) |*o| o.tag = outcome_unset;
            P.processBatch(p, &batch) catch {
                dropOutcomes(batch.outcomes);
                err.* = takeError().raw;
                return false;
            };
            packOutcomes(batch.outcomes, &batch.values_, ret);
            return true;
        }

        fn onTimers(
            ctx: *c.arkflow_plugin_types_timer_context_t,
            fired: *c.exports_arkflow_plugin_timer_handler_list_timer_t,
            ret: *c.exports_arkflow_plugin_timer_handler_outcomes_t,
            err: *c.arkflow_plugin_types_error_t,
        ) callconv(.c) bool {
            defer c.exports_arkflow_plugin_timer_handler_list_timer_free(fired);
            const p = if (instance) |*i| i else {
                err.* = notInitialized().raw;
                return false;
            };
            if (!@hasDecl(P, "onTimers")) {
                err.* = internal("no-timer-handler", "the plugin registered timers but has no onTimers").raw;
                return false;
            }
            const n = fired.len;
            var t = Timers{ .ctx = ctx, .fired = if (n == 0) &[_]Timer{} else fired.ptr[0..n], .outcomes = alloc(Outcome, n) };
            for (t.outcomes) |*o| o.tag = outcome_unset;
            P.onTimers(p, &t) catch {
                dropOutcomes(t.outcomes);
                err.* = takeError().raw;
                return false;
            };
            packOutcomes(t.outcomes, null, ret);
            return true;
        }

        fn onCheckpoint(ctx: *c.arkflow_plugin_types_checkpoint_context_t, err: *c.arkflow_plugin_types_error_t) callconv(.c) bool {
            const p = if (instance) |*i| i else {
                err.* = notInitialized().raw;
                return false;
            };
            if (@hasDecl(P, "onCheckpoint")) {
                P.onCheckpoint(p, ctx.*) catch {
                    err.* = takeError().raw;
                    return false;
                };
            }
            return true;
        }
    };
    @export(&G.describe, .{ .name = "exports_arkflow_plugin_processor_describe" });
    @export(&G.init, .{ .name = "exports_arkflow_plugin_processor_init" });
    @export(&G.processBatch, .{ .name = "exports_arkflow_plugin_processor_process_batch" });
    @export(&G.onCheckpoint, .{ .name = "exports_arkflow_plugin_processor_on_checkpoint" });
    @export(&G.onTimers, .{ .name = "exports_arkflow_plugin_timer_handler_on_timers" });
}

// ====================================== tests ======================================
// `zig test` natively (plugins/zig/build.sh runs them): only code that calls no host import.

// The native tests link no generated glue (plugin.c calls wasm imports): stand-ins for the
// free functions the code under test references.
const TestGlue = struct {
    fn errorFree(e: *c.arkflow_plugin_types_error_t) callconv(.c) void {
        if (e.code.len != 0) std.c.free(e.code.ptr);
        if (e.message.len != 0) std.c.free(e.message.ptr);
    }
    fn decodedFree(_: *c.arkflow_plugin_fields_decoded_t) callconv(.c) void {
        @panic("the tests' Fields are borrowed (fromRaw): nothing to free");
    }
};
comptime {
    if (@import("builtin").is_test) {
        @export(&TestGlue.errorFree, .{ .name = "arkflow_plugin_types_error_free" });
        @export(&TestGlue.decodedFree, .{ .name = "arkflow_plugin_fields_decoded_free" });
    }
}

fn testDropError(e: Error) void {
    var m = e;
    m.deinit();
}

test "typed fields: columns by name and type, absent items, mismatch reasons" {
    const t = std.testing;
    var ints = [_]i64{ 7, 0, -2 };
    var floats = [_]f64{ 1.5, 0, 0 };
    var text = "abc".*;
    var ends = [_]u32{ 1, 3, 3 };
    var v_n = [_]u8{0b101};
    var v_s = [_]u8{0b011};
    var v_b = [_]u8{0b110};
    var v_f = [_]u8{0b001};
    var b_vals = [_]u8{0b010};
    var cols = [_]c.arkflow_plugin_fields_typed_column_t{
        .{ .valid = list(&v_n), .values = .{ .tag = c.ARKFLOW_PLUGIN_FIELDS_TYPED_VALUES_INT64, .val = .{ .int64 = .{ .ptr = &ints, .len = 3 } } } },
        .{ .valid = list(&v_s), .values = .{ .tag = c.ARKFLOW_PLUGIN_FIELDS_TYPED_VALUES_UTF8, .val = .{ .utf8 = .{ .data = list(&text), .ends = .{ .ptr = &ends, .len = 3 } } } } },
        .{ .valid = list(&v_b), .values = .{ .tag = c.ARKFLOW_PLUGIN_FIELDS_TYPED_VALUES_BOOLEAN, .val = .{ .boolean = list(&b_vals) } } },
        .{ .valid = list(&v_f), .values = .{ .tag = c.ARKFLOW_PLUGIN_FIELDS_TYPED_VALUES_FLOAT64, .val = .{ .float64 = .{ .ptr = &floats, .len = 3 } } } },
    };
    var why2 = "field `s`: a number where utf8 was declared".*;
    var why5 = "not a JSON object".*;
    var mism = [_]c.plugin_tuple2_u32_string_t{
        .{ .f0 = 2, .f1 = .{ .ptr = &why2, .len = why2.len } },
        .{ .f0 = 5, .f1 = .{ .ptr = &why5, .len = why5.len } },
    };
    const raw: c.arkflow_plugin_fields_decoded_t = .{ .columns = .{ .ptr = &cols, .len = cols.len }, .mismatched = .{ .ptr = &mism, .len = mism.len } };
    const declared = [_]Field{ .{ .name = "n", .type = .int64 }, .{ .name = "s", .type = .utf8 }, .{ .name = "b", .type = .boolean }, .{ .name = "f", .type = .float64 } };
    var f = Fields.fromRaw(raw, &declared);
    defer f.deinit(); // borrowed: frees nothing

    const n = try f.int64("n");
    try t.expectEqual(@as(?i64, 7), n.get(0));
    try t.expectEqual(@as(?i64, null), n.get(1));
    try t.expectEqual(@as(?i64, -2), n.get(2));
    try t.expectEqual(@as(?i64, null), n.get(9)); // past the batch

    const s = try f.utf8("s");
    try t.expectEqualStrings("a", s.get(0).?);
    try t.expectEqualStrings("bc", s.get(1).?);
    try t.expect(s.get(2) == null);
    try t.expect(s.get(0).?.ptr == @as([*]const u8, &text)); // a view, not a copy

    const b = try f.boolean("b");
    try t.expectEqual(@as(?bool, null), b.get(0));
    try t.expectEqual(@as(?bool, true), b.get(1));
    try t.expectEqual(@as(?bool, false), b.get(2));

    const fl = try f.float64("f");
    try t.expectEqual(@as(?f64, 1.5), fl.get(0));
    try t.expectEqual(@as(?f64, null), fl.get(1));

    // Declared as int64, asked as float64; never declared.
    try t.expectError(error.Failed, f.float64("n"));
    var e = takeError();
    try t.expectEqual(ErrorClass.internal, e.errorClass());
    try t.expectEqualStrings("undeclared-field", e.code());
    try t.expectEqualStrings("field `n` was not declared as float64 (ak.declareFields)", e.message());
    testDropError(e);
    try t.expectError(error.Failed, f.utf8("zz"));
    e = takeError();
    try t.expectEqualStrings("undeclared-field", e.code());
    testDropError(e);

    try t.expectEqualStrings("field `s`: a number where utf8 was declared", f.mismatch(2).?);
    try t.expectEqualStrings("not a JSON object", f.mismatch(5).?);
    try t.expect(f.mismatch(1) == null);
    try t.expect(f.mismatch(3) == null);
    try t.expect(f.mismatch(6) == null);
    try t.expectEqual(@as(usize, 2), f.mismatchCount());
    try t.expectEqual(@as(usize, 5), f.mismatchAt(1).index);
    try t.expectEqualStrings("not a JSON object", f.mismatchAt(1).reason);
}

test "typed fields: an empty batch and a column shorter than asked" {
    const t = std.testing;
    const declared = [_]Field{.{ .name = "u", .type = .utf8 }};
    // The host returned fewer columns than declared (or none): the name reads as undeclared.
    var f = Fields.fromRaw(std.mem.zeroes(c.arkflow_plugin_fields_decoded_t), &declared);
    try t.expectError(error.Failed, f.utf8("u"));
    testDropError(takeError());
    try t.expect(f.mismatch(0) == null);
    try t.expectEqual(@as(usize, 0), f.mismatchCount());
    // Views of empty columns read as absent everywhere.
    const empty = Utf8Column{};
    try t.expect(empty.get(0) == null);
    const bad = Utf8Column{ .valid = &.{0xff}, .data = "ab", .ends = &.{ 1, 5 } }; // end past data
    try t.expectEqualStrings("a", bad.get(0).?);
    try t.expect(bad.get(1) == null);
}
