use super::*;

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

#[test]
fn inactive_it_is_the_system_allocator() {
    let mut a = Arena::new();
    unsafe {
        let p = a.alloc(layout(64, 8));
        assert_eq!(a.chunks(), (0, 0));
        a.dealloc(p, layout(64, 8));
    }
}

#[test]
fn a_batch_reuses_its_chunk_and_a_filling_vec_grows_in_place() {
    let mut a = Arena::new();
    a.set_active(true);
    unsafe {
        let first: Vec<*mut u8> = (0..100).map(|_| a.alloc(layout(24, 8))).collect();
        for w in first.windows(2) {
            assert_eq!(w[1] as usize - w[0] as usize, 24, "bump: one block after the other");
        }
        let grown = a.realloc(first[99], layout(24, 8), 4096);
        assert_eq!(grown, first[99], "the last block grows where it is");
        for &p in &first[..99] {
            a.dealloc(p, layout(24, 8));
        }
        a.dealloc(grown, layout(4096, 8));
        // Every block was freed: the next batch starts at the chunk's base again.
        assert_eq!(a.alloc(layout(24, 8)), first[0]);
        assert_eq!(a.chunks(), (1, FIRST_CHUNK));
    }
}

/// A tiny deterministic generator (the SDK has no `rand`).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

/// Random allocations, growths, shrinks and frees over many batches, with some blocks kept for
/// good: every live block keeps its own bytes (no two blocks overlap, nothing is reused while
/// alive), and the chunks stay within `ASIDE + 1`.
#[test]
fn no_live_block_is_ever_reused_and_the_overhead_is_bounded() {
    let mut a = Arena::new();
    let mut rng = Lcg(7);
    let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
    let mut kept: Vec<(*mut u8, Layout, u8)> = Vec::new();
    let mut most = 0;
    let check = |blocks: &[(*mut u8, Layout, u8)]| {
        for &(p, l, tag) in blocks {
            let bytes = unsafe { std::slice::from_raw_parts(p, l.size()) };
            assert!(bytes.iter().all(|&b| b == tag), "a live block was overwritten");
        }
    };
    for batch in 0..400u32 {
        a.set_active(batch % 7 != 3);
        for _ in 0..rng.next(200) {
            let tag = (rng.next(255) + 1) as u8;
            match rng.next(10) {
                0..=4 => {
                    let max = if rng.next(20) == 0 { 300_000 } else { 2_000 };
                    let l = layout(1 + rng.next(max), 1 << rng.next(5));
                    let p = unsafe { a.alloc(l) };
                    unsafe { std::ptr::write_bytes(p, tag, l.size()) };
                    live.push((p, l, tag));
                }
                5..=6 if !live.is_empty() => {
                    let i = rng.next(live.len());
                    let (p, l, _) = live[i];
                    let size = 1 + rng.next(3 * l.size());
                    let q = unsafe { a.realloc(p, l, size) };
                    let nl = layout(size, l.align());
                    unsafe { std::ptr::write_bytes(q, tag, size) };
                    live[i] = (q, nl, tag);
                }
                _ if !live.is_empty() => {
                    let (p, l, _) = live.swap_remove(rng.next(live.len()));
                    unsafe { a.dealloc(p, l) };
                }
                _ => {}
            }
            assert!(a.chunks().0 <= ASIDE + 1);
            most = most.max(a.chunks().0);
        }
        check(&live);
        check(&kept);
        // The batch ends: one block in ten batches outlives it; the rest is freed.
        if batch % 10 == 0 && !live.is_empty() {
            kept.push(live.swap_remove(0));
        }
        for (p, l, _) in live.drain(..) {
            unsafe { a.dealloc(p, l) };
        }
    }
    check(&kept);
    for (p, l, _) in kept.drain(..) {
        unsafe { a.dealloc(p, l) };
    }
    assert!(a.chunks().1 <= (ASIDE + 1) * MAX_CHUNK);
    assert_eq!(most, ASIDE + 1, "the kept blocks filled every aside slot");
}
