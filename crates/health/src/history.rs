//! A short ring buffer of recent events, for the status page.

use std::collections::VecDeque;

/// The last `capacity` entries pushed, oldest first.
#[derive(Debug, Clone)]
pub struct History<T> {
    entries: VecDeque<T>,
    capacity: usize,
}

impl<T> History<T> {
    pub fn new(capacity: usize) -> Self {
        History {
            entries: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Appends `entry`, dropping the oldest one when full.
    pub fn push(&mut self, entry: T) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.entries.iter()
    }

    pub fn last(&self) -> Option<&T> {
        self.entries.back()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::History;

    #[test]
    fn keeps_the_newest_entries_in_order() {
        let mut h = History::new(3);
        for i in 0..5 {
            h.push(i);
        }
        assert_eq!(h.iter().copied().collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(h.last(), Some(&4));
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut h = History::new(0);
        h.push(1);
        assert!(h.is_empty());
    }
}
