//! Every session's page views and custom events in one array.

use super::Step;

/// Each row's steps, in order, as a run in one array; after a build or a
/// [`compact`](Steps::compact) the runs lie in row order.
///
/// Top pages, the page and goal breakdowns, funnels and `page:` filters
/// walk the steps of every selected row, in row order. With a `Vec` per
/// row, whose buffers the heap scatters, those walks waited on memory:
/// at 1 M sessions and 10 M events the month's stats took 64 ms and an
/// unfiltered page breakdown 175, against 26 and 81 ms with the same steps
/// laid out in row order (`index::scale`, one run).
///
/// A run that must grow where the next run begins moves to the end of the
/// array with room for as many steps again (so a session that keeps
/// growing beside others moves a logarithmic number of times, as a `Vec`
/// reallocates), and its old place becomes garbage; once garbage is over
/// half the array, the array is written again in row order.
#[derive(Debug, Default)]
pub(crate) struct Steps {
    data: Vec<Step>,
    runs: Vec<Run>,
    /// Places in `data` that no run holds.
    garbage: usize,
    /// Rewrites of the array since it was made.
    #[cfg(test)]
    rewrites: usize,
}

/// A row's place in [`Steps::data`]: its steps, then room for more. In
/// `u32`s (12 bytes a row, where `usize`s took 24): the walks read one per
/// selected row, a million of them for a month of a busy site.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    start: u32,
    len: u32,
    room: u32,
}

impl Run {
    fn start(self) -> usize {
        self.start as usize
    }

    fn len(self) -> usize {
        self.len as usize
    }

    fn room(self) -> usize {
        self.room as usize
    }
}

/// A place or length in [`Steps::data`] as a [`Run`] keeps it. The array
/// holds fewer than 2^32 steps, as the index's dictionaries hold fewer than
/// 2^32 names: the index of 10 M events holds 6.8 M steps, and 2^32 would
/// take over 30 GB of memory first.
fn at(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Garbage below this is never worth a rewrite.
const MIN_GARBAGE: usize = 4096;

/// What fills a run's room until a step takes it.
const EMPTY: Step = Step { kind: 0, url: 0 };

impl Steps {
    /// A row's steps.
    pub(crate) fn of(&self, row: usize) -> &[Step] {
        let run = self.runs[row];
        &self.data[run.start()..run.start() + run.len()]
    }

    /// Adds a row with no steps.
    pub(crate) fn add_row(&mut self) {
        self.runs.push(Run {
            start: at(self.data.len()),
            ..Run::default()
        });
    }

    /// Room for this many more steps.
    pub(crate) fn reserve(&mut self, more: usize) {
        self.data.reserve_exact(more);
    }

    /// Steps the rows hold.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.runs.iter().map(|r| r.len()).sum()
    }

    /// Adds a step after a row's last.
    pub(crate) fn push(&mut self, row: usize, step: Step) {
        let run = self.runs[row];
        if run.len < run.room {
            self.data[run.start() + run.len()] = step;
        } else if run.start() + run.room() == self.data.len() {
            // The last run: it grows in place.
            self.data.push(step);
            self.runs[row].room += 1;
        } else {
            // It moves to the end, with room to grow.
            let start = self.data.len();
            let room = (2 * (run.len() + 1)).max(4);
            self.data
                .extend_from_within(run.start()..run.start() + run.len());
            self.data.push(step);
            self.data.resize(start + room, EMPTY);
            self.garbage += run.room();
            self.runs[row] = Run {
                start: at(start),
                len: run.len,
                room: at(room),
            };
        }
        self.runs[row].len += 1;
        self.tidy();
    }

    /// Replaces a row's steps.
    pub(crate) fn set(&mut self, row: usize, steps: impl IntoIterator<Item = Step>) {
        self.garbage += self.runs[row].room();
        let start = self.data.len();
        self.data.extend(steps);
        let len = at(self.data.len() - start);
        self.runs[row] = Run {
            start: at(start),
            len,
            room: len,
        };
        self.tidy();
    }

    /// Empties a row.
    pub(crate) fn clear(&mut self, row: usize) {
        self.garbage += self.runs[row].room();
        self.runs[row] = Run {
            start: at(self.data.len()),
            ..Run::default()
        };
        self.tidy();
    }

    fn tidy(&mut self) {
        if self.garbage > MIN_GARBAGE && self.garbage * 2 > self.data.len() {
            self.compact(None);
        }
    }

    /// Writes the array again in row order, without garbage or room,
    /// keeping only the rows `keep` marks (all when `None`).
    pub(crate) fn compact(&mut self, keep: Option<&[bool]>) {
        let held = self.runs.iter().map(|r| r.len()).sum();
        let mut data = Vec::with_capacity(held);
        let mut runs = Vec::with_capacity(self.runs.len());
        for (row, run) in self.runs.iter().enumerate() {
            if keep.is_some_and(|keep| !keep[row]) {
                continue;
            }
            runs.push(Run {
                start: at(data.len()),
                len: run.len,
                room: run.len,
            });
            data.extend_from_slice(&self.data[run.start()..run.start() + run.len()]);
        }
        self.data = data;
        self.runs = runs;
        self.garbage = 0;
        #[cfg(test)]
        {
            self.rewrites += 1;
        }
    }

    /// About how many bytes it takes.
    pub(crate) fn bytes(&self) -> usize {
        self.data.capacity() * std::mem::size_of::<Step>()
            + self.runs.capacity() * std::mem::size_of::<Run>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(n: u32) -> Step {
        Step { kind: n, url: n }
    }

    fn kinds(s: &Steps, row: usize) -> Vec<u32> {
        s.of(row).iter().map(|s| s.kind).collect()
    }

    #[test]
    fn rows_keep_their_steps_through_pushes_sets_clears_and_compactions() {
        let mut s = Steps::default();
        // A model: a Vec per row.
        let mut model: Vec<Vec<u32>> = Vec::new();
        let mut r = 0x2545_f491_4f6c_dd1d_u64;
        for i in 0..50_000_u32 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            let row = (r % 300) as usize;
            while model.len() <= row {
                s.add_row();
                model.push(Vec::new());
            }
            match r % 23 {
                0 => {
                    s.clear(row);
                    model[row].clear();
                }
                1 => {
                    s.set(row, [step(i), step(i + 1)]);
                    model[row] = vec![i, i + 1];
                }
                2 if i % 1000 == 0 => {
                    let keep: Vec<bool> = (0..model.len()).map(|row| row % 3 != 0).collect();
                    s.compact(Some(&keep));
                    let mut row = 0;
                    model.retain(|_| {
                        row += 1;
                        keep[row - 1]
                    });
                }
                _ => {
                    s.push(row, step(i));
                    model[row].push(i);
                }
            }
            for (row, want) in model.iter().enumerate() {
                assert_eq!(&kinds(&s, row), want, "row {row} after step {i}");
            }
        }
        assert_eq!(s.held(), model.iter().map(Vec::len).sum::<usize>());
        assert!(s.garbage * 2 <= s.data.len().max(2 * MIN_GARBAGE));
    }

    /// Two sessions growing side by side (a long one a client keeps
    /// feeding, beside the site's traffic) move a few times each, not at
    /// every step: each move leaves room for as many steps again. Moving
    /// at every step made garbage of the whole run each time, and the
    /// array was rewritten every few hundred steps.
    #[test]
    fn runs_growing_side_by_side_move_rarely() {
        let mut s = Steps::default();
        s.add_row();
        s.add_row();
        for i in 0..20_000 {
            s.push(0, step(i));
            s.push(1, step(i));
        }
        assert_eq!(s.of(0).len(), 20_000);
        assert_eq!(s.of(1).last().map(|s| s.kind), Some(19_999));
        assert!(s.rewrites <= 4, "{} rewrites", s.rewrites);
        assert!(s.data.len() <= 4 * s.held(), "{} places", s.data.len());
    }

    #[test]
    fn a_compaction_lays_the_runs_out_in_row_order() {
        let mut s = Steps::default();
        for _ in 0..3 {
            s.add_row();
        }
        s.push(2, step(20));
        s.push(0, step(0));
        s.push(2, step(21));
        s.push(1, step(10));
        s.compact(None);
        let all: Vec<u32> = s.data.iter().map(|s| s.kind).collect();
        assert_eq!(all, [0, 10, 20, 21], "no room left between the runs");
        assert_eq!(s.garbage, 0);
    }
}
