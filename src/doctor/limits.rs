//! Limits that must agree with each other: the job lease against the waits a worker makes
//! while holding it, and the Elastic Beanstalk bundle's nginx against Lector's upload limit
//! and inspection time.

use std::time::Duration;

use super::{
    bundle::{Bundle, NGINX_DEFAULT_TIMEOUT},
    report::Report,
};
use crate::{config::Config, domain::Engine};

/// Room for the multipart framing around the largest accepted file.
const MULTIPART_FRAMING: u64 = 64 * 1024;
/// Time an upload's answer may need after its last byte, besides the inspection: storing
/// the original in the database or on S3.
const STORE_ALLOWANCE: Duration = Duration::from_secs(60);
/// A shorter lease lets a slow database write cost a worker its job.
const MIN_LEASE: Duration = Duration::from_secs(10);

/// The job lease against the waits that happen while a worker holds it.
pub(super) fn time_limits(config: &Config, report: &mut Report) {
    let lease = config.job_lease;
    let mut fine = true;
    if lease < MIN_LEASE {
        fine = false;
        report.problem(
            "lease",
            format!(
                "LECTOR_JOB_LEASE_SECS={} is under {} s: one slow database write and another \
                 worker takes the job over",
                lease.as_secs(),
                MIN_LEASE.as_secs()
            ),
        );
    }
    // A worker waiting on Textract renews its lease once per poll.
    if config.engine.uses_textract() && config.textract_poll_max >= lease {
        fine = false;
        report.problem(
            "lease",
            format!(
                "LECTOR_TEXTRACT_POLL_MAX_MS ({} s) is not shorter than LECTOR_JOB_LEASE_SECS \
                 ({} s): a worker waiting on Textract would lose its job between two polls and \
                 another would take it over",
                config.textract_poll_max.as_secs_f64(),
                lease.as_secs()
            ),
        );
    }
    if fine {
        let textract = if config.engine == Engine::Local {
            String::new()
        } else {
            format!(
                " and after each Textract poll (at most {} s apart)",
                config.textract_poll_max.as_secs_f64()
            )
        };
        report.ok(
            "lease",
            format!(
                "{} s, renewed every {} s while a job runs{textract}",
                lease.as_secs(),
                config.heartbeat_interval().as_secs_f64()
            ),
        );
    }
}

pub(super) fn check_bundle(config: &Config, bundle: &Bundle, report: &mut Report) {
    let source = bundle.source.display();
    match bundle.web_command() {
        Some(command) if command.contains("lector") && !command.contains("worker") => {
            report.ok("procfile", format!("web: {command}"));
        }
        Some(command) => report.problem(
            "procfile",
            format!("the web process runs {command:?}, not `./lector serve`"),
        ),
        None => report.problem(
            "procfile",
            format!("{source} has no Procfile with a `web:` process (web: ./lector serve)"),
        ),
    }
    match bundle.binary {
        Some(true) => report.ok("binary", "lector is there and executable"),
        Some(false) => report.problem(
            "binary",
            "lector is there but not executable: build the bundle with scripts/build-eb-bundle",
        ),
        None => report.problem(
            "binary",
            format!("{source} has no lector binary at its top"),
        ),
    }
    let nginx = bundle.nginx();
    let body = nginx.body_limit();
    let mut limits = vec![(
        "this environment's LECTOR_MAX_UPLOAD_BYTES",
        config.max_upload_bytes,
    )];
    if let Some(limit) = bundle
        .environment_property("LECTOR_MAX_UPLOAD_BYTES")
        .and_then(|v| v.parse().ok())
    {
        limits.push(("LECTOR_MAX_UPLOAD_BYTES in .ebextensions", limit));
    }
    let too_small: Vec<String> = limits
        .iter()
        .filter(|(_, limit)| body != 0 && body < limit + MULTIPART_FRAMING)
        .map(|(name, limit)| format!("{name} ({})", mib(*limit)))
        .collect();
    let set = if nginx.client_max_body_size.is_some() {
        "client_max_body_size"
    } else {
        "nginx's default client_max_body_size"
    };
    if too_small.is_empty() {
        report.ok(
            "nginx-body",
            if body == 0 {
                "client_max_body_size 0: nginx does not limit uploads".to_owned()
            } else {
                format!("{set} {} covers the upload limit", mib(body))
            },
        );
    } else {
        report.problem(
            "nginx-body",
            format!(
                "{set} {} is smaller than {}: nginx would answer 413 before Lector sees the \
                 file (set it in .platform/nginx/conf.d/)",
                mib(body),
                too_small.join(" and ")
            ),
        );
    }
    let needed = config.inspect_timeout + STORE_ALLOWANCE;
    let read = nginx.proxy_read_timeout.unwrap_or(NGINX_DEFAULT_TIMEOUT);
    if read >= needed {
        report.ok(
            "nginx-timeout",
            format!("proxy_read_timeout {} s", read.as_secs()),
        );
    } else {
        report.problem(
            "nginx-timeout",
            format!(
                "proxy_read_timeout {} s{}: an upload is answered after it is stored and \
                 inspected (LECTOR_INSPECT_TIMEOUT_SECS={} s), so allow at least {} s",
                read.as_secs(),
                if nginx.proxy_read_timeout.is_none() {
                    " (nginx's default)"
                } else {
                    ""
                },
                config.inspect_timeout.as_secs(),
                needed.as_secs()
            ),
        );
    }
}

fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::report::Verdict;

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
        .unwrap()
    }

    fn verdicts(report: &Report, check: &str) -> Vec<(Verdict, String)> {
        report
            .findings
            .iter()
            .filter(|f| f.check == check)
            .map(|f| (f.verdict, f.detail.clone()))
            .collect()
    }

    #[test]
    fn a_short_lease_and_a_poll_longer_than_the_lease_are_problems() {
        let mut report = Report::default();
        time_limits(&config(&[]), &mut report);
        assert_eq!(verdicts(&report, "lease")[0].0, Verdict::Ok, "{report}");

        let mut report = Report::default();
        time_limits(
            &config(&[
                ("LECTOR_ENGINE", "textract"),
                ("LECTOR_S3_BUCKET", "b"),
                ("LECTOR_JOB_LEASE_SECS", "5"),
                ("LECTOR_TEXTRACT_POLL_MAX_MS", "20000"),
            ]),
            &mut report,
        );
        let lease = verdicts(&report, "lease");
        assert_eq!(lease.len(), 2, "{report}");
        assert!(lease.iter().all(|(v, _)| *v == Verdict::Problem));
        assert!(lease[0].1.contains("under 10 s"), "{}", lease[0].1);
        assert!(
            lease[1].1.contains("lose its job between two polls"),
            "{}",
            lease[1].1
        );
        assert_eq!(report.problems(), 2);
    }

    #[test]
    fn nginx_limits_are_held_against_the_upload_limit_and_the_inspection_time() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".platform/nginx/conf.d")).unwrap();
        std::fs::create_dir_all(dir.path().join(".ebextensions")).unwrap();
        std::fs::write(dir.path().join("Procfile"), "web: ./lector worker\n").unwrap();
        std::fs::write(dir.path().join("lector"), "not really").unwrap();
        std::fs::write(
            dir.path().join(".platform/nginx/conf.d/lector.conf"),
            "client_max_body_size 50m;\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(".ebextensions/01.config"),
            "option_settings:\n  aws:elasticbeanstalk:application:environment:\n    \
             LECTOR_MAX_UPLOAD_BYTES: \"209715200\"\n",
        )
        .unwrap();
        let bundle = Bundle::open(dir.path()).unwrap();
        let mut report = Report::default();
        check_bundle(
            &config(&[("LECTOR_MAX_UPLOAD_BYTES", "10485760")]),
            &bundle,
            &mut report,
        );
        let (verdict, detail) = verdicts(&report, "nginx-body").remove(0);
        assert_eq!(verdict, Verdict::Problem);
        assert!(
            detail.contains("client_max_body_size 50 MiB is smaller than LECTOR_MAX_UPLOAD_BYTES in .ebextensions (200 MiB)"),
            "{detail}"
        );
        assert!(
            !detail.contains("this environment"),
            "10 MiB fits: {detail}"
        );
        let (verdict, detail) = verdicts(&report, "nginx-timeout").remove(0);
        assert_eq!(verdict, Verdict::Problem);
        assert!(detail.contains("60 s (nginx's default)"), "{detail}");
        assert_eq!(verdicts(&report, "procfile")[0].0, Verdict::Problem);
        assert_eq!(
            verdicts(&report, "binary")[0].0,
            Verdict::Problem,
            "not executable"
        );
        assert_eq!(report.problems(), 4, "{report}");
    }
}
