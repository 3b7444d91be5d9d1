//! Recent measurements of one probe, in memory only, for the status page's
//! small charts: a ring of the last [`POINTS`] run times and, aligned with
//! it, one ring of values per series (a measurement name with its
//! attributes), at most [`SERIES`] series per probe.
//!
//! Memory is bounded and allocated up front per series: 8 bytes per run
//! time and 8 bytes per value, so at most `8 * POINTS * (1 + SERIES)`
//! bytes of numbers per probe (16 KiB + 960 B with the defaults), plus the
//! series' names. A run that lacks a series' measurement leaves a gap
//! (`NaN`); a series with nothing but gaps makes room for a new one; when
//! all [`SERIES`] are in use, further series are not charted (counted in
//! [`Recent::untracked`]). Nothing here is persisted: a restart starts the
//! charts afresh (the state history, persisted, covers the statuses).

use crate::report::Report;
use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

/// Runs kept per series.
pub const POINTS: usize = 120;
/// Series kept per probe.
pub const SERIES: usize = 16;

/// One charted series: a measurement name and its attributes.
#[derive(Debug)]
pub struct Series {
    pub name: String,
    pub unit: String,
    pub attributes: Vec<(String, String)>,
    /// Aligned with [`Recent::times`]; `NaN` where a run lacked it.
    values: VecDeque<f64>,
}

impl Series {
    /// The values, oldest first (`NaN`: missing from that run).
    pub fn values(&self) -> impl ExactSizeIterator<Item = f64> + '_ {
        self.values.iter().copied()
    }

    /// The latest value that is not a gap.
    pub fn last(&self) -> Option<f64> {
        self.values.iter().rev().copied().find(|v| !v.is_nan())
    }

    fn is_empty(&self) -> bool {
        self.values.iter().all(|v| v.is_nan())
    }
}

/// The recent measurements of one probe.
#[derive(Debug, Default)]
pub struct Recent {
    /// Run end times, Unix milliseconds, oldest first.
    times: VecDeque<u64>,
    series: Vec<Series>,
    untracked: u64,
}

impl Recent {
    /// Fold one run's measurements in.
    pub fn record(&mut self, at: SystemTime, report: &Report) {
        if self.times.capacity() == 0 {
            self.times.reserve_exact(POINTS);
        }
        if self.times.len() == POINTS {
            self.times.pop_front();
            for s in &mut self.series {
                s.values.pop_front();
            }
        }
        let ms = at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.times.push_back(ms);
        let len = self.times.len();
        for m in &report.measurements {
            let index = match self.find(&m.name, &m.attributes) {
                Some(i) => i,
                None => match self.make_room() {
                    Some(i) => {
                        let mut values = VecDeque::with_capacity(POINTS);
                        values.resize(len - 1, f64::NAN);
                        let series = Series {
                            name: m.name.clone(),
                            unit: m.unit.clone(),
                            attributes: m.attributes.clone(),
                            values,
                        };
                        if i == self.series.len() {
                            self.series.push(series);
                        } else {
                            self.series[i] = series;
                        }
                        i
                    }
                    None => {
                        self.untracked += 1;
                        continue;
                    }
                },
            };
            let s = &mut self.series[index];
            // A series repeated in one run (one sample per operation)
            // keeps the run's last value.
            if s.values.len() == len {
                s.values.pop_back();
            }
            s.values.push_back(m.value);
        }
        for s in &mut self.series {
            if s.values.len() < len {
                s.values.push_back(f64::NAN);
            }
        }
    }

    fn find(&self, name: &str, attributes: &[(String, String)]) -> Option<usize> {
        self.series
            .iter()
            .position(|s| s.name == name && s.attributes == attributes)
    }

    /// Where a new series goes: a free place, or one holding only gaps.
    fn make_room(&self) -> Option<usize> {
        if self.series.len() < SERIES {
            return Some(self.series.len());
        }
        self.series.iter().position(Series::is_empty)
    }

    /// Run end times (Unix milliseconds), oldest first.
    pub fn times(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.times.iter().copied()
    }

    /// The charted series, in the order they first appeared.
    pub fn series(&self) -> &[Series] {
        &self.series
    }

    /// Measurements not charted because every place was taken.
    pub fn untracked(&self) -> u64 {
        self.untracked
    }

    /// Bytes of numbers this probe holds now (names not counted).
    pub fn bytes(&self) -> usize {
        8 * (self.times.capacity()
            + self
                .series
                .iter()
                .map(|s| s.values.capacity())
                .sum::<usize>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;
    use std::time::Duration;

    fn report(values: &[(&str, f64)]) -> Report {
        Report::with_values(Status::Ok, values)
    }

    fn at(i: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(i)
    }

    #[test]
    fn series_stay_aligned_with_gaps_where_a_run_lacked_them() {
        let mut r = Recent::default();
        r.record(at(1), &report(&[("a", 1.0)]));
        r.record(at(2), &report(&[("b", 2.0)]));
        r.record(at(3), &report(&[("a", 3.0), ("b", 4.0)]));
        assert_eq!(r.times().len(), 3);
        let a: Vec<f64> = r.series()[0].values().collect();
        let b: Vec<f64> = r.series()[1].values().collect();
        assert_eq!((a[0], a[2]), (1.0, 3.0));
        assert!(a[1].is_nan() && b[0].is_nan());
        assert_eq!((b[1], b[2]), (2.0, 4.0));
        assert_eq!(r.series()[0].last(), Some(3.0));
    }

    #[test]
    fn memory_is_bounded_in_points_and_series() {
        let mut r = Recent::default();
        for i in 0..(POINTS as u64 * 3) {
            let names: Vec<String> = (0..40).map(|k| format!("m{}", (k + i) % 40)).collect();
            let values: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), i as f64)).collect();
            r.record(at(i), &report(&values));
        }
        assert_eq!(r.times().len(), POINTS);
        assert_eq!(r.series().len(), SERIES);
        assert!(r.series().iter().all(|s| s.values().len() == POINTS));
        assert!(r.untracked() > 0);
        assert!(r.bytes() <= 8 * POINTS * (1 + SERIES) * 2, "{}", r.bytes());
    }

    #[test]
    fn a_series_of_gaps_makes_room_for_a_new_one() {
        let mut r = Recent::default();
        let names: Vec<String> = (0..SERIES).map(|k| format!("old{k}")).collect();
        let values: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), 1.0)).collect();
        r.record(at(0), &report(&values));
        for i in 1..=POINTS as u64 {
            r.record(at(i), &report(&[("old0", 1.0), ("new", 2.0)]));
        }
        assert!(r.series().iter().any(|s| s.name == "new"));
        assert_eq!(r.series().len(), SERIES);
    }
}
