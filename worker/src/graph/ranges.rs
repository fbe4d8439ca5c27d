//! A set of item indices stored as sorted, disjoint ranges, so that a map step over 10,000
//! items that are mostly done in order checkpoints as a handful of numbers.

use serde::{Deserialize, Serialize};

/// Sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RangeSet(Vec<(usize, usize)>);

impl RangeSet {
    pub fn contains(&self, i: usize) -> bool {
        let at = self.0.partition_point(|&(_, end)| end < i);
        self.0.get(at).is_some_and(|&(start, _)| start <= i)
    }

    pub fn insert(&mut self, i: usize) {
        let at = self
            .0
            .partition_point(|&(_, end)| end.saturating_add(1) < i);
        match self.0.get(at).copied() {
            Some((start, end)) if start <= i && i <= end => {}
            Some((start, end)) if end.saturating_add(1) == i => {
                self.0[at] = (start, i);
                // Merge with the next range when they now touch.
                if let Some(&(next_start, next_end)) = self.0.get(at + 1) {
                    if next_start == i + 1 {
                        self.0[at] = (start, next_end);
                        self.0.remove(at + 1);
                    }
                }
            }
            Some((start, end)) if i.saturating_add(1) == start => self.0[at] = (i, end),
            _ => self.0.insert(at, (i, i)),
        }
    }

    /// How many indices are in the set.
    pub fn len(&self) -> usize {
        self.0.iter().map(|(start, end)| end - start + 1).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_merge_into_ranges() {
        let mut set = RangeSet::default();
        for i in [0, 1, 2, 5, 7, 6, 4, 3, 10] {
            set.insert(i);
        }
        assert_eq!(set.0, vec![(0, 7), (10, 10)]);
        assert_eq!(set.len(), 9);
        assert!(set.contains(0) && set.contains(7) && set.contains(10));
        assert!(!set.contains(8) && !set.contains(9) && !set.contains(11));
        set.insert(9);
        set.insert(8);
        assert_eq!(set.0, vec![(0, 10)]);
        set.insert(5);
        assert_eq!(set.len(), 11);
    }

    #[test]
    fn matches_a_plain_set_for_any_order() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..50 {
            let mut set = RangeSet::default();
            let mut plain = std::collections::BTreeSet::new();
            for _ in 0..200 {
                let i = rng.usize(0..100);
                set.insert(i);
                plain.insert(i);
                assert_eq!(set.len(), plain.len());
            }
            for i in 0..110 {
                assert_eq!(set.contains(i), plain.contains(&i), "{i}");
            }
            for pair in set.0.windows(2) {
                assert!(
                    pair[0].1 + 1 < pair[1].0,
                    "disjoint and non-adjacent: {:?}",
                    set.0
                );
            }
        }
    }
}
