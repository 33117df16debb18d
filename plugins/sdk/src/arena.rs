//! The per-batch bump allocator: the SDK's global allocator on wasm32 (feature `arena`, on by
//! default; a plugin that brings its own allocator turns the SDK's default features off).
//!
//! Contract:
//! - **When it serves.** From the start of a `process-batch` call until the next call of another
//!   export, blocks of up to a quarter of a chunk come from a bump chunk: the batch's own
//!   allocations, the host's lowering of state replies and of the next batch, and the reply's
//!   buffers the host frees after reading them. Outside that window (`init`, `describe`,
//!   `on-checkpoint`, `on-timers`) and for larger blocks, the system allocator (dlmalloc) serves.
//! - **Reuse.** Each chunk counts its live blocks. A free decrements the count (and gives back
//!   the space of the chunk's last block); when the count reaches 0 the whole chunk is free again.
//!   The last block also grows in place, which is how a `Vec` that is being filled grows.
//! - **Nothing is reused while alive.** A block that outlives its batch (kept in `self`, say)
//!   keeps its chunk: when the current chunk is full it is set aside and a new one (twice as
//!   large, up to [`MAX_CHUNK`]) taken; a set-aside chunk goes back to the system allocator when
//!   its last block is freed. With [`ASIDE`] chunks set aside, blocks come from the system
//!   allocator until one of them is released. The overhead is at most `ASIDE + 1` chunks.
//! - wasm32 components are single-threaded; the global instance relies on that.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::null_mut;

/// The first chunk's size; later ones double up to [`MAX_CHUNK`].
pub const FIRST_CHUNK: usize = 64 << 10;
/// The largest chunk.
pub const MAX_CHUNK: usize = 512 << 10;
/// How many chunks may be set aside while they still hold live blocks.
pub const ASIDE: usize = 4;

#[derive(Clone, Copy)]
struct Chunk {
    base: *mut u8,
    size: usize,
    top: usize,
    live: usize,
    /// Offset of the last block handed out (None when unknown, e.g. after it was freed).
    last: Option<usize>,
}

impl Chunk {
    const NONE: Chunk = Chunk { base: null_mut(), size: 0, top: 0, live: 0, last: None };

    fn holds(&self, p: *mut u8) -> bool {
        !self.base.is_null() && p >= self.base && (p as usize) < self.base as usize + self.size
    }

    /// A block of `layout` from this chunk, if it fits.
    fn bump(&mut self, layout: Layout) -> Option<*mut u8> {
        if self.live == 0 {
            self.top = 0;
        }
        let start = (self.base as usize + self.top).next_multiple_of(layout.align()) - self.base as usize;
        if start + layout.size() > self.size {
            return None;
        }
        self.top = start + layout.size();
        self.live += 1;
        self.last = Some(start);
        // SAFETY: start + size <= self.size, inside the chunk's allocation.
        Some(unsafe { self.base.add(start) })
    }

    /// Frees `p` (a block of this chunk); true when the chunk holds no block any more.
    fn free(&mut self, p: *mut u8) -> bool {
        let at = p as usize - self.base as usize;
        if self.last == Some(at) {
            self.top = at;
            self.last = None;
        }
        self.live -= 1;
        self.live == 0
    }
}

/// The allocator's state (see the module docs). Not thread-safe: [`BatchArena`] wraps it for
/// the single-threaded wasm32 target; tests drive it directly.
pub struct Arena {
    active: bool,
    current: Chunk,
    aside: [Chunk; ASIDE],
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

impl Arena {
    pub const fn new() -> Self {
        Arena { active: false, current: Chunk::NONE, aside: [Chunk::NONE; ASIDE] }
    }

    /// Turns bump allocation on (a batch starts) or off (another export is called).
    pub fn set_active(&mut self, active: bool) {
        self.active = active;
    }

    /// # Safety
    /// As `GlobalAlloc::alloc`.
    pub unsafe fn alloc(&mut self, layout: Layout) -> *mut u8 {
        if !self.active || layout.size() > MAX_CHUNK / 4 {
            return System.alloc(layout);
        }
        if let Some(p) = self.current.bump(layout) {
            return p;
        }
        match self.next_chunk().and_then(|c| c.bump(layout)) {
            Some(p) => p,
            None => System.alloc(layout),
        }
    }

    /// Sets the current chunk aside (if it holds blocks) and takes a new one.
    unsafe fn next_chunk(&mut self) -> Option<&mut Chunk> {
        let size = if self.current.base.is_null() { FIRST_CHUNK } else { (self.current.size * 2).min(MAX_CHUNK) };
        if !self.current.base.is_null() {
            let slot = self.aside.iter().position(|c| c.base.is_null())?;
            self.aside[slot] = self.current;
        }
        self.current = Chunk::NONE;
        let base = System.alloc(Layout::from_size_align(size, 16).ok()?);
        if base.is_null() {
            return None;
        }
        self.current = Chunk { base, size, ..Chunk::NONE };
        Some(&mut self.current)
    }

    /// # Safety
    /// As `GlobalAlloc::dealloc`.
    pub unsafe fn dealloc(&mut self, p: *mut u8, layout: Layout) {
        if self.current.holds(p) {
            self.current.free(p);
        } else if let Some(c) = self.aside.iter_mut().find(|c| c.holds(p)) {
            if c.free(p) {
                System.dealloc(c.base, Layout::from_size_align_unchecked(c.size, 16));
                *c = Chunk::NONE;
            }
        } else {
            System.dealloc(p, layout);
        }
    }

    /// # Safety
    /// As `GlobalAlloc::realloc`.
    pub unsafe fn realloc(&mut self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let c = &mut self.current;
        if c.holds(p) {
            let at = p as usize - c.base as usize;
            if c.last == Some(at) && at + new_size <= c.size {
                c.top = at + new_size;
                return p;
            }
        } else if !self.aside.iter().any(|c| c.holds(p)) {
            return System.realloc(p, layout, new_size);
        }
        if new_size <= layout.size() {
            return p; // a block of a chunk shrinks where it is
        }
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let q = self.alloc(new_layout);
        if !q.is_null() {
            std::ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
            self.dealloc(p, layout);
        }
        q
    }

    /// (chunks in use, bytes they hold): for tests.
    pub fn chunks(&self) -> (usize, usize) {
        let all = std::iter::once(&self.current).chain(self.aside.iter()).filter(|c| !c.base.is_null());
        all.fold((0, 0), |(n, b), c| (n + 1, b + c.size))
    }
}

/// [`Arena`] as a global allocator (wasm32 only: components are single-threaded).
pub struct BatchArena(std::cell::UnsafeCell<Arena>);

// SAFETY: only installed on wasm32, where a component instance runs one thread.
unsafe impl Sync for BatchArena {}

impl BatchArena {
    pub const fn new() -> Self {
        BatchArena(std::cell::UnsafeCell::new(Arena::new()))
    }

    /// See [`Arena::set_active`].
    pub fn set_active(&self, active: bool) {
        // SAFETY: single-threaded; no allocator call is in progress while the glue runs this.
        unsafe { (*self.0.get()).set_active(active) }
    }
}

impl Default for BatchArena {
    fn default() -> Self {
        BatchArena::new()
    }
}

unsafe impl GlobalAlloc for BatchArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        (*self.0.get()).alloc(layout)
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        (*self.0.get()).dealloc(p, layout)
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        (*self.0.get()).realloc(p, layout, new_size)
    }
}

#[cfg(test)]
#[path = "arena_tests.rs"]
mod tests;
