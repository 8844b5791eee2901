//! Which exec records the monitor forgets. An exec's record (exit code, for the daemon's
//! wait and inspect) outlives its process; the daemon learns the exit at once through its
//! wait and forgets the exec itself within two of its collections (moby's
//! `execCommandGC`, 5 minutes apart), so the monitor keeps a finished record for
//! [`ENDED_MAX_AGE`] and at most [`ENDED_KEPT`] of them, the latest. A record goes only
//! once its process is reaped, its output all read, its terminal closed, and no
//! connection carries its streams or waits for it; the indices that connections hold are
//! moved down with [`remap`].

use std::time::{Duration, SystemTime};

/// Finished exec records kept at most.
pub const ENDED_KEPT: usize = 256;

/// How long a finished exec record is kept at most: two of the daemon's collections.
pub const ENDED_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// What the rule looks at in one exec record.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    /// Exited, output read, terminal closed.
    pub done: bool,
    /// A connection carries its streams or waits for its exit.
    pub in_use: bool,
    pub finished_at: Option<SystemTime>,
}

/// The indices of the records to forget, ascending.
pub fn to_forget(records: &[Record], now: SystemTime) -> Vec<usize> {
    let mut done: Vec<(SystemTime, usize)> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.done && !r.in_use)
        .map(|(i, r)| (r.finished_at.unwrap_or(SystemTime::UNIX_EPOCH), i))
        .collect();
    // Latest first: the first `ENDED_KEPT` stay unless too old.
    done.sort_unstable_by(|a, b| b.cmp(a));
    let mut gone: Vec<usize> = done
        .iter()
        .enumerate()
        .filter(|(rank, (at, _))| {
            *rank >= ENDED_KEPT || now.duration_since(*at).is_ok_and(|age| age > ENDED_MAX_AGE)
        })
        .map(|(_, (_, i))| *i)
        .collect();
    gone.sort_unstable();
    gone
}

/// Where each of `len` records is once those at `gone` (ascending) are removed.
pub fn remap(len: usize, gone: &[usize]) -> Vec<Option<usize>> {
    let mut out = Vec::with_capacity(len);
    let mut removed = 0;
    for i in 0..len {
        if gone.get(removed) == Some(&i) {
            removed += 1;
            out.push(None);
        } else {
            out.push(Some(i - removed));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Option<SystemTime> {
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn keeps_the_latest_finished_and_everything_still_in_use() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut records = vec![
            // Running: never forgot.
            Record {
                done: false,
                in_use: false,
                finished_at: None,
            },
            // Finished long ago, but a connection still waits on it.
            Record {
                done: true,
                in_use: true,
                finished_at: at(1),
            },
            // Finished long ago.
            Record {
                done: true,
                in_use: false,
                finished_at: at(2),
            },
        ];
        // Recently finished, more than are kept.
        for i in 0..ENDED_KEPT + 5 {
            records.push(Record {
                done: true,
                in_use: false,
                finished_at: at(999_700 + i as u64),
            });
        }
        let gone = to_forget(&records, now);
        // The old one, and the five that finished first of the recent ones.
        assert_eq!(gone, [2, 3, 4, 5, 6, 7]);
        let map = remap(records.len(), &gone);
        assert_eq!(
            &map[..9],
            [
                Some(0),
                Some(1),
                None,
                None,
                None,
                None,
                None,
                None,
                Some(2)
            ]
        );
        assert_eq!(
            map.last().copied().flatten(),
            Some(records.len() - 1 - gone.len())
        );
        let left: Vec<Record> = records
            .iter()
            .zip(&map)
            .filter(|(_, m)| m.is_some())
            .map(|(r, _)| *r)
            .collect();
        assert!(to_forget(&left, now).is_empty());
    }
}
