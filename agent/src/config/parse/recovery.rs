//! The recovery actions: `terminate` and `cancel` (roll back or stop stuck
//! work, by session filters), `resume_replay` (redo: resume a paused
//! standby) and `reinit` (re-clone a standby from its primary).
//!
//! ```toml
//! action = { terminate = "primary", idle_in_transaction = "5m" }
//! action = { terminate = "primary", transaction_older_than = "10m", blocking = true, databases = ["app"] }
//! action = { cancel = "primary", running_longer_than = "2m", users = ["report"] }
//! action = { resume_replay = "standby" }
//! action = { reinit = "standby", primary = "primary", data_dir = "/var/lib/postgresql/15/main" }
//! ```

use super::super::model::*;
use super::super::reader::{At, Section};
use super::super::units;
use super::Parser;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The action keys this file parses.
pub(super) const KINDS: [&str; 4] = ["terminate", "cancel", "resume_replay", "reinit"];

impl Parser<'_, '_> {
    pub(super) fn recovery_action(
        &mut self,
        kind: &str,
        path: &str,
        a: &mut Section,
        targets: &BTreeMap<String, Target>,
    ) -> Option<Action> {
        let key: &'static str = KINDS.iter().copied().find(|k| *k == kind)?;
        let target_name = a.string(&mut self.d, key)?;
        let target = self.target_ref(path, key, target_name, targets);
        match key {
            "terminate" | "cancel" => self.session_action(key, path, a, target?),
            "resume_replay" => {
                let timeout = a
                    .duration(&mut self.d, "timeout", units::SCHEDULE)
                    .map_or(Duration::from_secs(30), |t| t.value);
                Some(Action::ResumeReplay(ResumeReplayAction {
                    target: target?,
                    timeout,
                }))
            }
            _ => self.reinit(path, a, targets, target),
        }
    }

    fn session_action(
        &mut self,
        key: &str,
        path: &str,
        a: &mut Section,
        target: String,
    ) -> Option<Action> {
        let d = &mut self.d;
        let mut duration =
            |a: &mut Section, k: &'static str| a.duration(d, k, units::HOLD).map(|v| v.value);
        let filter = SessionFilter {
            idle_in_transaction: duration(a, "idle_in_transaction"),
            transaction_older_than: duration(a, "transaction_older_than"),
            running_longer_than: duration(a, "running_longer_than"),
            blocking: false,
            databases: Vec::new(),
            users: Vec::new(),
            applications: Vec::new(),
        };
        let d = &mut self.d;
        let list = |a: &mut Section, d: &mut _, k| {
            a.string_list(d, k)
                .map(|l| l.into_iter().map(|v| v.value).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let filter = SessionFilter {
            blocking: a.bool(d, "blocking").unwrap_or(false),
            databases: list(a, d, "databases"),
            users: list(a, d, "users"),
            applications: list(a, d, "applications"),
            ..filter
        };
        let max_sessions = a
            .integer(d, "max_sessions", 1, 10_000)
            .map_or(100, |v| v.value as u32);
        let timeout = a
            .duration(d, "timeout", units::SCHEDULE)
            .map_or(Duration::from_secs(30), |t| t.value);
        let has_rule = match key {
            "terminate" => {
                filter.idle_in_transaction.is_some() || filter.transaction_older_than.is_some()
            }
            _ => filter.running_longer_than.is_some(),
        };
        if !has_rule {
            let hint = if key == "terminate" {
                "`idle_in_transaction = \"5m\"` and/or `transaction_older_than = \"10m\"` (with `blocking = true` to take only transactions that block others)"
            } else {
                "`running_longer_than = \"2m\"`"
            };
            d.error(
                a.span.clone(),
                format!("{path}: `{key}` needs a rule saying which sessions: {hint}"),
            );
            return None;
        }
        if filter.blocking && filter.transaction_older_than.is_none() {
            d.error(
                a.span.clone(),
                format!("{path}: `blocking` applies to `transaction_older_than`; set that too"),
            );
        }
        let action = SessionAction {
            target,
            filter,
            max_sessions,
            timeout,
        };
        Some(if key == "terminate" {
            Action::Terminate(action)
        } else {
            Action::Cancel(action)
        })
    }

    fn reinit(
        &mut self,
        path: &str,
        a: &mut Section,
        targets: &BTreeMap<String, Target>,
        standby: Option<String>,
    ) -> Option<Action> {
        let d = &mut self.d;
        let primary = a
            .string(d, "primary")
            .unwrap_or_else(|| At::new("primary".into(), a.span.clone()));
        let timeout = a
            .duration(d, "timeout", units::SCHEDULE)
            .map_or(Duration::from_secs(3600), |t| t.value);
        let stream_within = a
            .duration(d, "stream_within", units::SCHEDULE)
            .map_or(Duration::from_secs(60), |t| t.value);
        let bin_dir = a.string(d, "bin_dir").map_or_else(
            || PathBuf::from("/usr/lib/postgresql/15/bin"),
            |b| PathBuf::from(b.value),
        );
        let data_dir = a.string(d, "data_dir").map(|p| PathBuf::from(p.value));
        let primary = self.target_ref(path, "primary", primary, targets);
        let standby = standby?;
        let data_dir = data_dir.or_else(|| targets.get(&standby)?.data_dir.clone());
        let Some(data_dir) = data_dir.filter(|p| p.is_absolute()) else {
            self.d.error(
                a.span.clone(),
                format!("{path}: `reinit` needs the standby's data directory as an absolute path: set `data_dir`, or `data_dir` on [targets.{standby}]"),
            );
            return None;
        };
        if primary.as_deref() == Some(standby.as_str()) {
            self.d.error(
                a.span.clone(),
                format!("{path}: `reinit` and `primary` must be different targets"),
            );
            return None;
        }
        Some(Action::Reinit(ReinitAction {
            standby,
            primary: primary?,
            data_dir,
            bin_dir,
            timeout,
            stream_within,
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Action, parse_str};
    use std::path::Path;

    const TARGETS: &str = "[targets.primary]\ndsn = \"host=a\"\n[targets.standby]\ndsn = \"host=b\"\ndata_dir = \"/pg/standby\"\n\
                           [[probe]]\nname = \"p\"\nwasm = \"builtin:pg-alive\"\n";

    fn action(text: &str) -> Result<Action, String> {
        let config = format!(
            "{TARGETS}[[remediation]]\nname = \"r\"\non = {{ probe = \"p\" }}\naction = {text}\n"
        );
        parse_str("w.toml", &config, Path::new("/"))
            .map(|c| c.remediations[0].action.clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn recovery_actions_parse() {
        let Action::Terminate(t) = action("{ terminate = \"primary\", transaction_older_than = \"10m\", blocking = true, users = [\"app\"] }").unwrap() else {
            panic!("not terminate")
        };
        assert!(t.filter.blocking);
        assert_eq!(t.filter.users, ["app"]);
        assert!(matches!(
            action("{ cancel = \"primary\", running_longer_than = \"2m\" }"),
            Ok(Action::Cancel(_))
        ));
        assert!(matches!(
            action("{ resume_replay = \"standby\" }"),
            Ok(Action::ResumeReplay(_))
        ));
        let Action::Reinit(r) = action("{ reinit = \"standby\" }").unwrap() else {
            panic!("not reinit")
        };
        assert_eq!(r.data_dir, Path::new("/pg/standby"));
        assert_eq!(r.primary, "primary");
    }

    #[test]
    fn recovery_actions_say_what_is_missing() {
        let e = action("{ terminate = \"primary\" }").unwrap_err();
        assert!(e.contains("needs a rule saying which sessions"), "{e}");
        let e = action("{ reinit = \"primary\", primary = \"standby\" }").unwrap_err();
        assert!(e.contains("needs the standby's data directory"), "{e}");
        let e = action("{ reinit = \"standby\", primary = \"standby\" }").unwrap_err();
        assert!(e.contains("must be different targets"), "{e}");
    }
}
