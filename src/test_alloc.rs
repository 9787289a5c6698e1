//! For the unit tests: an allocator that counts, per thread, the bytes
//! live at once, so a property test can check that decoding a peer's bytes
//! never allocates more than their size and the format's limits allow (a
//! length prefix of 4 GiB must not become a 4 GiB buffer).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting.
struct Counting;

thread_local! {
    /// Bytes this thread has allocated and not freed, and the most at once
    /// since the last [`peak_during`] began.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn add(bytes: isize) {
    // `try_with`: a thread being torn down has no counters any more.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + bytes;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counters are thread-local cells, which neither allocate nor lock.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize);
        // SAFETY: as `GlobalAlloc::realloc` requires of the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Runs `f`; returns what it returned and the most bytes it had allocated
/// at once on this thread (beyond what was live before).
pub(crate) fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    let result = f();
    let peak = PEAK.with(Cell::get);
    (result, (peak - before).max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_allocated_at_once_is_counted_and_what_was_freed_is_not() {
        let (_, peak) = peak_during(|| {
            let big = vec![1u8; 1 << 20];
            drop(big);
            let small = vec![1u8; 1000];
            small.len()
        });
        assert!((1 << 20..(1 << 20) + 4096).contains(&peak), "{peak}");
        let (_, none) = peak_during(|| 1 + 1);
        assert_eq!(none, 0);
    }
}
