//! Giving the memory of a burst back to the system once it is over.
//!
//! glibc keeps the heap a burst of lines grew (freed, but mapped), so
//! after a flood the process stays as large as the flood made it. Once a
//! burst has passed, `malloc_trim` returns the free pages.

/// Bytes of lines handled since the last trim that make one worth it.
const TRIM_AFTER_BYTES: u64 = 4 * 1024 * 1024;

/// Counts the bytes of lines handled; [`Trimmer::tick`], called about once
/// a second, trims once a burst is over: enough was handled, and nothing
/// since the last tick.
#[derive(Debug, Default)]
pub(super) struct Trimmer {
    handled: u64,
    at_last_tick: u64,
}

impl Trimmer {
    /// Lines of `bytes` were shown or sent.
    pub(super) fn handled(&mut self, bytes: usize) {
        self.handled = self.handled.saturating_add(bytes as u64);
    }

    /// Trims when a burst has just ended; says whether it did.
    pub(super) fn tick(&mut self) -> bool {
        let quiet = self.handled == self.at_last_tick;
        let trim = quiet && self.handled >= TRIM_AFTER_BYTES;
        if trim {
            give_back();
            self.handled = 0;
        }
        self.at_last_tick = self.handled;
        trim
    }
}

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
        t.handled(1);
        assert!(!t.tick());
        assert!(t.tick(), "quiet for a tick after enough: trimmed");
        assert!(!t.tick(), "nothing since: no second trim");
        t.handled(10);
        assert!(!t.tick());
        assert!(!t.tick(), "too little for a trim");
    }
}
