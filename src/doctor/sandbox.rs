//! The `sandbox` check: the parser's confinement as this machine's kernel grants it. A probe
//! child, started and confined exactly as the parsers are and from this process's own
//! environment (with whatever secrets it holds), tries what an exploit would try.

use std::net::TcpListener;

use super::Report;
use crate::{
    config::Config,
    engines::{
        probe::{Attempt, ProbeRequest, probe},
        sandbox::PASSED_ON,
    },
};

/// Variables the child is given beyond those passed on from the parent.
const SET_FOR_THE_CHILD: &[&str] = &["MIMALLOC_ARENA_RESERVE", "OMP_THREAD_LIMIT"];

pub(super) async fn check(config: &Config, report: &mut Report) {
    match got_through(config).await {
        Ok((protections, leaks)) if leaks.is_empty() => report.ok("sandbox", protections),
        Ok((protections, leaks)) => report.problem(
            "sandbox",
            format!("the parser could {} ({protections})", leaks.join(", ")),
        ),
        Err(error) => report.problem("sandbox", format!("the probe did not run: {error:#}")),
    }
}

/// The protections in force, and what the probe managed that a parser must not.
async fn got_through(config: &Config) -> anyhow::Result<(String, Vec<String>)> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("probe.pdf");
    std::fs::write(&file, "%PDF-1.4\n")?;
    let written = dir.path().join("written");
    let environ = format!("/proc/{}/environ", std::process::id());
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let request = ProbeRequest {
        file,
        try_write: vec![written.clone()],
        try_read: vec![environ.clone().into()],
        try_connect: Some(listener.local_addr()?),
    };
    let seen = probe(&config.sandbox_exe, &request, |name| std::env::var_os(name)).await?;
    let mut leaks: Vec<String> = seen
        .environment
        .keys()
        .filter(|name| !PASSED_ON.contains(&name.as_str()))
        .filter(|name| !SET_FOR_THE_CHILD.contains(&name.as_str()))
        .map(|name| format!("see {name}"))
        .collect();
    let refused = |attempt: Option<&Attempt>| attempt.is_some_and(|a| !a.succeeded());
    let attempts = [
        (
            refused(seen.writes.first().map(|(_, a)| a)),
            format!("write {}", written.display()),
        ),
        (
            refused(seen.reads.first().map(|(_, a)| a)),
            format!("read {environ}"),
        ),
        (
            refused(seen.connect.as_ref()),
            "connect to 127.0.0.1".into(),
        ),
        (refused(Some(&seen.spawn)), "start a program".into()),
        // ENOENT: the process was made, and then found no folder to change to.
        (
            refused(Some(&seen.process)) && seen.process.errno() != Some(libc::ENOENT),
            "start a process".into(),
        ),
    ];
    leaks.extend(
        attempts
            .into_iter()
            .filter(|(refused, _)| !refused)
            .map(|(_, what)| what),
    );
    Ok((seen.protections.to_string(), leaks))
}
