//! The Elastic Beanstalk bundle: `scripts/build-eb-bundle` packages a binary with the
//! Procfile, `.ebextensions/` and `.platform/`; unzipped, it has the layout Elastic Beanstalk
//! expects and settings that agree with Lector's (port, health check, upload limit vs nginx).
//! The release build for glibc 2.34 is the same script without `--binary` (slow; not run here).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::harness::{self, lector_exe};

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The bundle of the test's `lector` binary, built in `dir` and unzipped there; where.
fn built_and_unzipped(dir: &Path) -> PathBuf {
    let zip = dir.join("lector-eb.zip");
    // The debug binary is large; compressing it would only slow the test.
    harness::build_bundle(&lector_exe(), &zip);
    let unpacked = dir.join("bundle");
    let unzip = Command::new("unzip")
        .arg("-q")
        .arg(&zip)
        .arg("-d")
        .arg(&unpacked)
        .status()
        .expect("unzip is installed");
    assert!(unzip.success());
    unpacked
}

#[test]
fn the_bundle_has_the_binary_procfile_and_platform_settings_elastic_beanstalk_needs() {
    let work = tempfile::tempdir().unwrap();
    let unpacked = built_and_unzipped(work.path());

    // The binary sits at the top, executable, and runs.
    let version = Command::new(unpacked.join("lector"))
        .arg("--version")
        .output()
        .expect("the bundled binary is executable");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("lector "));
    // Without its debug info (the test's binary has plenty).
    let sections = |binary: &Path| {
        let out = Command::new("objdump")
            .arg("-h")
            .arg(binary)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(sections(&lector_exe()).contains(".debug_info"));
    assert!(!sections(&unpacked.join("lector")).contains(".debug_info"));
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
    // Read as `lector doctor` reads a bundle: nginx lets the largest upload through.
    let bundle = lector::doctor::bundle::Bundle::open(&unpacked).unwrap();
    let upload_limit: u64 = bundle
        .environment_property("LECTOR_MAX_UPLOAD_BYTES")
        .unwrap()
        .parse()
        .unwrap();
    let nginx = bundle.nginx();
    assert!(
        nginx.body_limit() > upload_limit,
        "nginx must let the largest upload (and its multipart framing) through"
    );
    assert_eq!(
        nginx.proxy_read_timeout,
        Some(std::time::Duration::from_secs(300))
    );
    assert!(
        read(&unpacked, ".platform/nginx/conf.d/lector.conf")
            .contains("proxy_request_buffering off")
    );
}
