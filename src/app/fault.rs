//! Network faults a test can ask a debug build for, through the
//! environment variable [`FAULTS_VAR`], to reach paths a healthy loopback
//! never takes. A release build has none and never reads the variable.
//!
//! The value is a comma-separated list of:
//! - `drop-lines=FIRST-LAST`: room batches arriving by gossip whose first
//!   line number is within `FIRST..=LAST` are dropped, as a lossy network
//!   would (any author, any room);
//! - `refuse-fetches=SECONDS`: for this long after start, no missing lines
//!   are fetched, as if every member that holds them were unreachable.
//!
//! Anything else in it is reported on stderr and ignored.

use std::time::{Duration, Instant};

/// The environment variable read by [`Faults::from_env`].
pub const FAULTS_VAR: &str = "RUST_P2P_CHAT_FAULTS";

/// The faults asked for; none by default.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Faults {
    /// Gossip batches starting within this range (inclusive) are dropped.
    drop_lines: Option<(u64, u64)>,
    /// No fetches before this.
    refuse_fetches_until: Option<Instant>,
}

impl Faults {
    /// The faults [`FAULTS_VAR`] asks for, in a debug build; none in a
    /// release build.
    pub fn from_env() -> Faults {
        #[cfg(debug_assertions)]
        if let Ok(spec) = std::env::var(FAULTS_VAR) {
            let (faults, unknown) = Faults::parse(&spec, Instant::now());
            for part in unknown {
                eprintln!("{FAULTS_VAR}: ignored {part:?}");
            }
            return faults;
        }
        Faults::default()
    }

    /// Reads a list of faults (see the module notes); also returns the
    /// parts it did not understand.
    #[cfg(any(debug_assertions, test))]
    fn parse(spec: &str, now: Instant) -> (Faults, Vec<String>) {
        let mut faults = Faults::default();
        let mut unknown = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let understood = match part.split_once('=') {
                Some(("drop-lines", range)) => range
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                    .map(|range| faults.drop_lines = Some(range))
                    .is_some(),
                Some(("refuse-fetches", seconds)) => seconds
                    .parse()
                    .ok()
                    .map(|s| faults.refuse_fetches_until = Some(now + Duration::from_secs(s)))
                    .is_some(),
                _ => false,
            };
            if !understood {
                unknown.push(part.to_owned());
            }
        }
        (faults, unknown)
    }

    /// Whether a room batch arriving by gossip with its first line
    /// numbered `first` is to be dropped.
    pub fn drops_batch(&self, first: u64) -> bool {
        self.drop_lines
            .is_some_and(|(low, high)| (low..=high).contains(&first))
    }

    /// Whether fetching missing lines is refused now.
    pub fn refuses_fetch(&self) -> bool {
        self.refuse_fetches_until
            .is_some_and(|until| Instant::now() < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_read_from_a_list_and_the_rest_is_reported() {
        let now = Instant::now();
        let (faults, unknown) = Faults::parse("drop-lines=5-7, refuse-fetches=60,nonsense", now);
        assert!(!faults.drops_batch(4));
        assert!(faults.drops_batch(5) && faults.drops_batch(7));
        assert!(!faults.drops_batch(8));
        assert!(faults.refuses_fetch());
        assert_eq!(unknown, vec!["nonsense".to_owned()]);

        let (faults, unknown) = Faults::parse("drop-lines=x-1,refuse-fetches=-1", now);
        assert_eq!(faults, Faults::default());
        assert_eq!(unknown.len(), 2);
        assert!(!Faults::default().drops_batch(1) && !Faults::default().refuses_fetch());
    }
}
