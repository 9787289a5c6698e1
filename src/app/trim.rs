//! Giving the memory of a burst back to the system once it is over.
//!
//! glibc keeps the heap a burst of lines grew (freed, but mapped), so
//! after a flood the process stays as large as the flood made it. Once a
//! burst has passed, `malloc_trim` returns the free pages.

/// Bytes of lines handled since the last trim that make one worth it.
const TRIM_AFTER_BYTES: u64 = 4 * 1024 * 1024;

/// Bytes of lines in one tick that still count as quiet: a chat that goes
/// on at a talking pace after a burst must not keep the burst's memory.
const QUIET_BYTES: u64 = 64 * 1024;

/// Ticks after a burst's trim when it is trimmed once more: what the burst
/// left to do after it (lines still on their way to the disk, caches that
/// let go of them a few seconds later) frees memory of its own.
const TRIM_AGAIN_AFTER_TICKS: u32 = 5;

/// Counts the bytes of lines handled; [`Trimmer::tick`], called about once
/// a second, trims once a burst is over (enough was handled, and less than
/// [`QUIET_BYTES`] since the last tick), and again
/// [`TRIM_AGAIN_AFTER_TICKS`] later.
#[derive(Debug, Default)]
pub(super) struct Trimmer {
    handled: u64,
    at_last_tick: u64,
    again_in: Option<u32>,
}

impl Trimmer {
    /// Lines of `bytes` were shown or sent.
    pub(super) fn handled(&mut self, bytes: usize) {
        self.handled = self.handled.saturating_add(bytes as u64);
    }

    /// Trims when a burst has just ended; says whether it did.
    pub(super) fn tick(&mut self) -> bool {
        let quiet = self.handled - self.at_last_tick < QUIET_BYTES;
        let burst_over = quiet && self.handled >= TRIM_AFTER_BYTES;
        let again = match self.again_in {
            Some(0) => {
                self.again_in = None;
                true
            }
            Some(n) => {
                self.again_in = Some(n - 1);
                false
            }
            None => false,
        };
        if burst_over {
            self.handled = 0;
            self.again_in = Some(TRIM_AGAIN_AFTER_TICKS - 1);
        }
        self.at_last_tick = self.handled;
        let trim = burst_over || again;
        if trim {
            give_back();
        }
        trim
    }
}

/// Has glibc keep one heap for every thread, before any thread starts.
/// Lines are read on one thread and freed on another; with a heap per
/// thread (glibc's default), each keeps pages the others freed, which a
/// trim cannot return. The threads here are few and mostly wait, so they
/// do not contend for one heap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn one_heap() {
    // SAFETY: mallopt only sets a tuning value of glibc's allocator; it
    // takes no pointer and is called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Other allocators keep their own policy.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn one_heap() {}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn give_back() {
    // SAFETY: malloc_trim only walks glibc's own arenas and returns their
    // free pages to the kernel; it takes no pointer of ours and is safe to
    // call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_back() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_a_burst_is_over_and_not_while_it_goes_on() {
        let mut t = Trimmer::default();
        t.handled(TRIM_AFTER_BYTES as usize);
        assert!(!t.tick(), "the burst goes on: it handled something since");
        t.handled(QUIET_BYTES as usize);
        assert!(!t.tick());
        t.handled(QUIET_BYTES as usize - 1);
        assert!(t.tick(), "quiet for a tick after enough: trimmed");
        for _ in 1..TRIM_AGAIN_AFTER_TICKS {
            assert!(!t.tick(), "nothing since: no trim until the second one");
        }
        assert!(t.tick(), "trimmed once more a few ticks after the burst");
        for _ in 0..TRIM_AGAIN_AFTER_TICKS * 2 {
            assert!(!t.tick(), "and then no more");
        }
        t.handled(10);
        assert!(!t.tick());
        assert!(!t.tick(), "too little for a trim");
    }
}
