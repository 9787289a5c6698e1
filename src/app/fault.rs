//! Network faults a test can ask a debug build for, through the
//! environment variable `RUST_P2P_CHAT_FAULTS`, to reach paths a healthy
//! loopback never takes. A release build has none and never reads the
//! variable.
//!
//! The value is a comma-separated list of:
//! - `drop-lines=FIRST-LAST`: room lines numbered `FIRST..=LAST` that
//!   arrive by gossip are dropped, as a lossy network would (any author,
//!   any room); the rest of their batch still arrives;
//! - `refuse-gap-fetches`: lines missing before a gap are never fetched,
//!   as if every member holding them were unreachable until the gap is
//!   given up on. Lines given up on are still asked for afterwards.
//!
//! Anything else in it is reported on stderr and ignored.

/// The faults asked for; none by default.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Faults {
    /// Lines numbered within this range (inclusive) are dropped.
    drop_lines: Option<(u64, u64)>,
    /// Gaps are never fetched.
    refuse_gap_fetches: bool,
}

impl Faults {
    /// The faults the environment asks for, in a debug build; none in a
    /// release build.
    pub fn from_env() -> Faults {
        #[cfg(debug_assertions)]
        if let Ok(spec) = std::env::var("RUST_P2P_CHAT_FAULTS") {
            let (faults, unknown) = Faults::parse(&spec);
            for part in unknown {
                eprintln!("RUST_P2P_CHAT_FAULTS: ignored {part:?}");
            }
            return faults;
        }
        Faults::default()
    }

    /// Reads a list of faults (see the module notes); also returns the
    /// parts it did not understand.
    #[cfg(any(debug_assertions, test))]
    fn parse(spec: &str) -> (Faults, Vec<String>) {
        let mut faults = Faults::default();
        let mut unknown = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let understood = match part.split_once('=') {
                Some(("drop-lines", range)) => range
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                    .map(|range| faults.drop_lines = Some(range))
                    .is_some(),
                None if part == "refuse-gap-fetches" => {
                    faults.refuse_gap_fetches = true;
                    true
                }
                _ => false,
            };
            if !understood {
                unknown.push(part.to_owned());
            }
        }
        (faults, unknown)
    }

    /// What is left of a batch of lines arriving by gossip (`texts`
    /// numbered from `first`): up to two runs of consecutive lines (first
    /// line number, texts), before and after the lines dropped; the whole
    /// batch when nothing is. No allocation: it runs for every batch.
    pub fn pass_lines(
        &self,
        first: u64,
        mut texts: Vec<String>,
    ) -> impl Iterator<Item = (u64, Vec<String>)> {
        let end = first.saturating_add(texts.len() as u64);
        let Some((low, high)) = self
            .drop_lines
            .filter(|&(low, high)| low < end && high >= first)
        else {
            return [Some((first, texts)), None].into_iter().flatten();
        };
        let after = (high.saturating_add(1) < end)
            .then(|| (high + 1, texts.split_off((high + 1 - first) as usize)));
        let before = (low > first).then(|| {
            texts.truncate((low - first) as usize);
            (first, texts)
        });
        [before, after].into_iter().flatten()
    }

    /// Whether lines missing before a gap are not to be fetched.
    pub fn refuses_gap_fetches(&self) -> bool {
        self.refuse_gap_fetches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
        range.map(|i| i.to_string()).collect()
    }

    #[test]
    fn faults_are_read_from_a_list_and_the_rest_is_reported() {
        let (faults, unknown) = Faults::parse("drop-lines=5-7, refuse-gap-fetches,nonsense");
        assert!(faults.refuses_gap_fetches());
        assert_eq!(faults.drop_lines, Some((5, 7)));
        assert_eq!(unknown, vec!["nonsense".to_owned()]);

        let (faults, unknown) = Faults::parse("drop-lines=x-1,refuse-gap-fetches=1");
        assert_eq!(faults, Faults::default());
        assert_eq!(unknown.len(), 2);
    }

    fn pass(faults: &Faults, first: u64, texts: Vec<String>) -> Vec<(u64, Vec<String>)> {
        faults.pass_lines(first, texts).collect()
    }

    #[test]
    fn dropped_lines_are_cut_out_of_any_batch() {
        let (faults, _) = Faults::parse("drop-lines=5-7");
        assert_eq!(pass(&faults, 1, texts(1..=4)), vec![(1, texts(1..=4))]);
        assert_eq!(pass(&faults, 8, texts(8..=9)), vec![(8, texts(8..=9))]);
        assert!(pass(&faults, 5, texts(5..=7)).is_empty());
        assert_eq!(pass(&faults, 6, texts(6..=9)), vec![(8, texts(8..=9))]);
        assert_eq!(
            pass(&faults, 3, texts(3..=10)),
            vec![(3, texts(3..=4)), (8, texts(8..=10))]
        );
        assert_eq!(pass(&faults, 4, texts(4..=6)), vec![(4, texts(4..=4))]);
        let none = Faults::default();
        assert_eq!(pass(&none, 5, texts(5..=7)), vec![(5, texts(5..=7))]);
        assert!(!none.refuses_gap_fetches());
    }
}
