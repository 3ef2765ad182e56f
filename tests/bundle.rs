//! The Elastic Beanstalk bundle: `scripts/build-eb-bundle` packages a binary with the
//! Procfile, `.ebextensions/` and `.platform/`; unzipped, it has the layout Elastic Beanstalk
//! expects and settings that agree with Lector's (port, health check, upload limit vs nginx).
//! The release build for glibc 2.34 is the same script without `--binary` (slow; not run here).

mod common;

use std::{path::Path, process::Command};

use common::lector_exe;

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `client_max_body_size 110m;` in bytes.
fn nginx_body_limit(conf: &str) -> u64 {
    let value = conf
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("client_max_body_size "))
        .expect("client_max_body_size is set")
        .trim_end_matches(';')
        .to_ascii_lowercase();
    let (number, unit) = value.split_at(value.len() - 1);
    match unit {
        "m" => number.parse::<u64>().unwrap() * 1024 * 1024,
        "g" => number.parse::<u64>().unwrap() * 1024 * 1024 * 1024,
        _ => value.parse().unwrap(),
    }
}

#[test]
fn the_bundle_has_the_binary_procfile_and_platform_settings_elastic_beanstalk_needs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let zip = work.path().join("lector-eb.zip");
    let built = Command::new(root.join("scripts/build-eb-bundle"))
        .arg("--binary")
        .arg(lector_exe())
        .arg("--out")
        .arg(&zip)
        // The debug binary is large; compressing it would only slow the test.
        .env("BUNDLE_COMPRESSLEVEL", "0")
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let unpacked = work.path().join("bundle");
    let unzip = Command::new("unzip")
        .arg("-q")
        .arg(&zip)
        .arg("-d")
        .arg(&unpacked)
        .status()
        .expect("unzip is installed");
    assert!(unzip.success());

    // The binary sits at the top, executable, and runs.
    let version = Command::new(unpacked.join("lector"))
        .arg("--version")
        .output()
        .expect("the bundled binary is executable");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("lector "));
    assert_eq!(read(&unpacked, "Procfile").trim(), "web: ./lector serve");

    // Elastic Beanstalk's settings agree with Lector's.
    let eb = read(&unpacked, ".ebextensions/01-lector.config");
    for expected in [
        "PORT: \"5000\"",
        "HealthCheckPath: /healthz",
        "SystemType: enhanced",
        "StreamLogs: true",
        "RetentionInDays: 30",
        "LECTOR_LOG_FORMAT: json",
        "LECTOR_BLOB_STORE: s3",
        "LECTOR_ENGINE: hybrid",
    ] {
        assert!(
            eb.contains(expected),
            "{expected} missing from .ebextensions"
        );
    }
    let upload_limit: u64 = eb
        .lines()
        .find_map(|l| l.trim().strip_prefix("LECTOR_MAX_UPLOAD_BYTES: "))
        .unwrap()
        .trim_matches('"')
        .parse()
        .unwrap();
    let nginx = read(&unpacked, ".platform/nginx/conf.d/lector.conf");
    assert!(
        nginx_body_limit(&nginx) > upload_limit,
        "nginx must let the largest upload (and its multipart framing) through"
    );
    assert!(nginx.contains("proxy_read_timeout 300s"));
    assert!(nginx.contains("proxy_request_buffering off"));
}
