//! `zig build`: src/plugin.zig + the SDK (the package in sdk/, module `arkflow`) -> the core module
//! zig-out/bin/{{name_snake}}.wasm, a wasm32-wasi reactor. build.sh runs it after generating the
//! bindings into .build/gen/, and then makes the component (dist/{{name_snake}}.wasm).
const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.resolveTargetQuery(.{ .cpu_arch = .wasm32, .os_tag = .wasi });
    // fast (ReleaseFast), not small: about half the guest time per record for ~10 KB more.
    const optimize = b.option(std.builtin.Optimize, "optimize", "default: fast") orelse .fast;
    const arkflow = b.dependency("arkflow", .{ .target = target, .optimize = optimize, .gen = b.path(".build/gen") });

    const plugin = b.addExecutable(.{
        .name = "{{name_snake}}",
        .root_module = b.createModule(.{
            .root_source_file = b.path("src/plugin.zig"),
            .target = target,
            .optimize = optimize,
            .strip = true,
            .imports = &.{.{ .name = "arkflow", .module = arkflow.module("arkflow") }},
        }),
    });
    plugin.entry = .disabled; // a library of exports, called by the host
    plugin.wasi_exec_model = .reactor;
    plugin.stack_size = 256 * 1024; // Zig's wasm default, 16 MiB, would be every instance's floor
    b.installArtifact(plugin);
}
