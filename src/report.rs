//! The result of a run that can change things (`check-and-apply`, `rollback`): one value,
//! printed as one JSON object on stdout (`--json`) or as log lines for people.

use std::path::PathBuf;

use serde::Serialize;

use crate::deploy::Told;
use crate::state::Outcome;

/// What a finished run says.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub outcome: &'static str,
    /// The version installed before.
    pub from: Option<String>,
    /// The version the run was about.
    pub to: Option<String>,
    pub tag: Option<String>,
    /// Why the run did what it did (the decision's reason code), if it decided.
    pub reason: Option<&'static str>,
    pub message: String,
    pub help: Vec<String>,
    pub exit_code: i32,
    /// Set when the run failed: the message again, for `jq .error`.
    pub error: Option<String>,
    /// A switch an earlier run left, which this run finished first.
    pub recovered: Option<Recovered>,
    /// The build log, when one was written.
    pub log: Option<PathBuf>,
}

/// How a switch an earlier run left was finished.
#[derive(Debug, Clone, Serialize)]
pub struct Recovered {
    pub outcome: &'static str,
    pub message: String,
}

impl From<&Told> for Recovered {
    fn from(t: &Told) -> Self {
        Self {
            outcome: t.outcome.as_str(),
            message: t.message.clone(),
        }
    }
}

impl RunReport {
    /// A report of `told`.
    pub fn new(told: &Told) -> Self {
        Self {
            outcome: told.outcome.as_str(),
            from: None,
            to: None,
            tag: None,
            reason: None,
            message: told.message.clone(),
            help: told.help.clone(),
            exit_code: told.exit_code,
            error: (told.exit_code != crate::exit::OK).then(|| told.message.clone()),
            recovered: None,
            log: None,
        }
    }

    /// A run that stopped because the switch an earlier run left could not be finished;
    /// `asked` is what this run was asked to do (and did not).
    pub fn recovery(told: &Told, asked: &str) -> Self {
        let mut report = Self::new(told);
        report.recovered = Some(told.into());
        report.help.push(format!(
            "help: the {asked} asked for was not done; run it again once `heph-selfupdate status` shows no unfinished switch"
        ));
        report
    }

    /// A run that had nothing to do (or only reported).
    pub fn quiet(outcome: Outcome, message: String) -> Self {
        Self::new(&Told {
            outcome,
            message,
            help: Vec::new(),
            event: None,
            exit_code: crate::exit::OK,
        })
    }

    /// Prints it: JSON on stdout, or the message (and help lines) in the log. Returns the
    /// exit code.
    pub fn emit(&self, out: &dyn crate::output::Out, json: bool, logged: bool) -> i32 {
        if json {
            match serde_json::to_string(self) {
                Ok(text) => out.line(&text),
                Err(e) => log::error!("could not encode the report: {e}"),
            }
        }
        if !logged {
            let mut text = self.message.clone();
            for h in &self.help {
                text.push('\n');
                text.push_str(h);
            }
            match self.exit_code {
                crate::exit::OK => log::info!("{text}"),
                crate::exit::TEMPFAIL => log::warn!("{text}"),
                _ => log::error!("{text}"),
            }
        }
        self.exit_code
    }
}
