//! The ArkFlow Zig SDK 0.2.0 as a Zig package: the module `arkflow` (arkflow.zig).
//!
//! The SDK sits on the C bindings `wit-bindgen c` generates from the plugin's WIT package (world
//! `timed-plugin` under the name `plugin`: plugin.h, plugin.c, plugin_component_type.o; see
//! toolchain/common.sh's wit_bindgen_c). Pass their directory as the option `gen`; the module
//! then imports them as `bindings` (plugin.h through translate-c), carries the C glue (plugin.c)
//! and the component-type object into whatever links it, and links libc. In a plugin's build.zig:
//!
//!     const ak = b.dependency("arkflow", .{ .target = target, .optimize = optimize, .gen = b.path(".build/gen") });
//!     // ... .imports = &.{.{ .name = "arkflow", .module = ak.module("arkflow") }}
//!
//! and build a wasm32-wasi reactor executable with no entry (as a project's build.zig does). On its
//! own, `zig build -Dgen=DIR -Dplugin=FILE` builds the plugin FILE with it (a check of the package).
const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{ .default_target = .{ .cpu_arch = .wasm32, .os_tag = .wasi } });
    const optimize = b.standardOptimizeOption(.{});
    const gen = b.option(std.Build.LazyPath, "gen", "the wit-bindgen C bindings' directory (plugin.h, plugin.c, plugin_component_type.o)") orelse {
        b.getInstallStep().dependOn(&b.addFail("arkflow: pass -Dgen=<the wit-bindgen C bindings' directory>").step);
        return;
    };

    const bindings = b.addTranslateC(.{ .root_source_file = gen.path(b, "plugin.h"), .target = target, .optimize = optimize });
    const arkflow = b.addModule("arkflow", .{
        .root_source_file = b.path("arkflow.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true, // buffers handed to the host are malloc'd; the glue free()s them
        .imports = &.{.{ .name = "bindings", .module = bindings.createModule() }},
    });
    arkflow.addIncludePath(gen);
    arkflow.addCSourceFile(.{ .file = gen.path(b, "plugin.c") });
    arkflow.addObjectFile(gen.path(b, "plugin_component_type.o"));

    // The package's own check (plugins/zig/build.sh): -Dplugin=FILE builds that plugin with it.
    const root = b.option(std.Build.LazyPath, "plugin", "a plugin's root file: build it into zig-out/bin/plugin.wasm") orelse return;
    const plugin = b.addExecutable(.{ .name = "plugin", .root_module = b.createModule(.{
        .root_source_file = root,
        .target = target,
        .optimize = optimize,
        .strip = true,
        .imports = &.{.{ .name = "arkflow", .module = arkflow }},
    }) });
    plugin.entry = .disabled;
    plugin.wasi_exec_model = .reactor;
    plugin.stack_size = 256 * 1024;
    b.installArtifact(plugin);
}
