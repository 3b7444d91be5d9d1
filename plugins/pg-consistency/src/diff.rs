//! Narrowing a mismatched chunk down to its keys: the rows that differ,
//! that the standby lacks, or that only the standby has.

use crate::chunks::Key;
use std::collections::HashMap;

/// How one key differs between the sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    /// Both sides have the key, with different rows.
    Changed(Key),
    /// Only the primary has the key.
    MissingOnStandby(Key),
    /// Only the standby has the key.
    OnlyOnStandby(Key),
}

/// The differences between two lists of (key, row hash), in the primary's
/// key order, then the standby's extra keys in its order.
pub fn differences(primary: &[(Key, String)], standby: &[(Key, String)]) -> Vec<Difference> {
    let on_standby: HashMap<&Key, &String> = standby.iter().map(|(k, h)| (k, h)).collect();
    let on_primary: HashMap<&Key, &String> = primary.iter().map(|(k, h)| (k, h)).collect();
    let mut found = Vec::new();
    for (key, hash) in primary {
        match on_standby.get(key) {
            None => found.push(Difference::MissingOnStandby(key.clone())),
            Some(other) if *other != hash => found.push(Difference::Changed(key.clone())),
            Some(_) => {}
        }
    }
    for (key, _) in standby {
        if !on_primary.contains_key(key) {
            found.push(Difference::OnlyOnStandby(key.clone()));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(items: &[(i64, &str)]) -> Vec<(Key, String)> {
        items
            .iter()
            .map(|(k, h)| (vec![k.to_string()], h.to_string()))
            .collect()
    }

    fn key(k: i64) -> Key {
        vec![k.to_string()]
    }

    #[test]
    fn differences_name_each_key_and_how_it_differs() {
        let primary = rows(&[(1, "a"), (2, "b"), (3, "c"), (4, "d")]);
        let standby = rows(&[(1, "a"), (2, "B"), (4, "d"), (9, "z")]);
        assert_eq!(
            differences(&primary, &standby),
            vec![
                Difference::Changed(key(2)),
                Difference::MissingOnStandby(key(3)),
                Difference::OnlyOnStandby(key(9)),
            ]
        );
        assert!(differences(&primary, &primary).is_empty());
    }
}
