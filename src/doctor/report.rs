//! The doctor's report: one line per finding, in the order the checks ran.

use std::{fmt, future::Future, time::Duration};

use crate::app::status::Check;

/// A check that has not answered by then has failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Fine.
    Ok,
    /// Wrong: the deployment will fail or misbehave until it is fixed.
    Problem,
    /// Not checked, and why is in the detail.
    Skipped,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Finding {
    /// What was checked.
    pub check: &'static str,
    /// How it came out.
    pub verdict: Verdict,
    /// What was found, or what is wrong and how to fix it.
    pub detail: String,
}

/// Everything `lector doctor` found, in the order it looked.
#[derive(Debug, Default)]
pub struct Report {
    /// The findings.
    pub findings: Vec<Finding>,
}

impl Report {
    pub(super) fn add(&mut self, check: &'static str, verdict: Verdict, detail: impl Into<String>) {
        self.findings.push(Finding {
            check,
            verdict,
            detail: detail.into(),
        });
    }

    pub(super) fn ok(&mut self, check: &'static str, detail: impl Into<String>) {
        self.add(check, Verdict::Ok, detail);
    }

    pub(super) fn problem(&mut self, check: &'static str, detail: impl Into<String>) {
        self.add(check, Verdict::Problem, detail);
    }

    pub(super) fn skipped(&mut self, check: &'static str, detail: impl Into<String>) {
        self.add(check, Verdict::Skipped, detail);
    }

    /// A check of the readiness report (see [`crate::app::status`]), with `advise` turning
    /// what a failed one found into what to do.
    pub(super) fn check(
        &mut self,
        name: &'static str,
        found: Check,
        advise: impl FnOnce(String) -> String,
    ) {
        match found.ok {
            true => self.ok(name, found.detail),
            false => self.problem(name, advise(found.detail)),
        }
    }

    /// How many problems were found.
    pub fn problems(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.verdict == Verdict::Problem)
            .count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            let verdict = match finding.verdict {
                Verdict::Ok => "ok",
                Verdict::Problem => "PROBLEM",
                Verdict::Skipped => "skipped",
            };
            writeln!(f, "{verdict:<8} {:<13} {}", finding.check, finding.detail)?;
        }
        Ok(())
    }
}

/// The answer of `check`, or why there was none within [`CHECK_TIMEOUT`].
pub(super) async fn within<T, E: fmt::Display>(
    check: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_reads_as_one_line_per_check() {
        let mut report = Report::default();
        report.ok("database", "postgres answers");
        report.problem("s3", "the bucket b does not exist");
        report.skipped("bundle", "no bundle given");
        assert_eq!(
            report.to_string(),
            "ok       database      postgres answers\n\
             PROBLEM  s3            the bucket b does not exist\n\
             skipped  bundle        no bundle given\n"
        );
        assert_eq!(report.problems(), 1);
    }
}
