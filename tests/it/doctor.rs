//! `lector doctor`, run as a process against real parts: a migrated Postgres database or a
//! new SQLite file, the S3 and Textract stand-ins, moto's SQS, and a bundle zip made by
//! `scripts/build-eb-bundle`. A well-wired deployment passes; a mis-wired one gets each
//! problem named in words, and the command fails.

use std::path::{Path, PathBuf};

use crate::harness::{
    self, Backend, MotoSqs, TestDatabase,
    aws::{ACCESS_KEY, BUCKET, FakeS3, SECRET_KEY, Standins},
    free_port, lector_command,
};

/// Runs `lector doctor` with only `vars` (and PATH) in its environment; (success, stdout,
/// stderr). Asynchronously: the stand-ins it talks to run on this test's runtime.
async fn doctor(vars: &[(&str, &str)], bundle: &Path) -> (bool, String, String) {
    lector_command(&["doctor", "--bundle", bundle.to_str().unwrap()])
        .env_clear()
        .envs(vars)
        .run_async()
        .await
}

/// The line `lector doctor` printed for `check`, whatever its verdict.
fn lines_for<'a>(stdout: &'a str, check: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .filter(|line| line.split_whitespace().nth(1) == Some(check))
        .collect()
}

/// A bundle zip as `scripts/build-eb-bundle` makes it, around a small stand-in binary (only
/// its place and mode matter here; bundle.rs runs the real one).
fn bundle_zip(dir: &Path) -> PathBuf {
    let binary = dir.join("lector-binary");
    harness::write_script(&binary, "echo lector");
    let zip = dir.join("lector-eb.zip");
    harness::build_bundle(&binary, &zip);
    zip
}

#[tokio::test]
async fn a_well_wired_deployment_passes_every_check() {
    let Some(sqs) = MotoSqs::start_or_skip().await else {
        return;
    };
    let Some(db) = TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    let (migrated, _, stderr) = lector_command(&["migrate"])
        .env("DATABASE_URL", &db.url)
        .env("LECTOR_SECRET_KEY", harness::TEST_SECRET_KEY)
        .run();
    assert!(migrated, "{stderr}");
    let aws = Standins::start().await;
    let work = tempfile::tempdir().unwrap();
    let zip = bundle_zip(work.path());
    let mut vars = aws.settings();
    vars.extend_from_slice(&[
        ("DATABASE_URL", db.url.as_str()),
        ("LECTOR_SECRET_KEY", harness::TEST_SECRET_KEY),
        ("LECTOR_ENGINE", "hybrid"),
        ("LECTOR_BLOB_STORE", "s3"),
        ("AWS_ENDPOINT_URL_SQS", sqs.endpoint.as_str()),
        (
            "LECTOR_TEXTRACT_SNS_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:AmazonTextract-lector",
        ),
        (
            "LECTOR_TEXTRACT_SNS_ROLE_ARN",
            "arn:aws:iam::123456789012:role/lector-textract-publish",
        ),
        ("LECTOR_TEXTRACT_SQS_QUEUE_URL", sqs.queue_url.as_str()),
    ]);

    let (ok, stdout, stderr) = doctor(&vars, &zip).await;
    println!("{stdout}");
    assert!(ok, "{stdout}\n{stderr}");
    assert_one_ok_line_each(&stdout, WELL_WIRED);
    assert_eq!(
        aws.textract.start_calls(),
        0,
        "doctor starts no Textract job"
    );
    assert!(!stdout.contains("PROBLEM"), "{stdout}");
}

#[tokio::test]
async fn a_miswired_deployment_gets_each_problem_in_words() {
    let Some(db) = TestDatabase::new(Backend::Sqlite).await else {
        return;
    };
    let s3 = FakeS3::start().await;
    // Nothing listens here: Textract is unreachable.
    let textract_endpoint = format!("http://127.0.0.1:{}", free_port());
    let sqs = MotoSqs::start().await;
    let queue_url = sqs.as_ref().map_or_else(
        || "http://127.0.0.1:9/queue/none".to_owned(),
        |sqs| format!("{}-missing", sqs.queue_url),
    );
    let sqs_endpoint = sqs.as_ref().map_or_else(
        || "http://127.0.0.1:9".to_owned(),
        |sqs| sqs.endpoint.clone(),
    );
    let work = tempfile::tempdir().unwrap();
    let bundle = a_bundle_whose_nginx_is_too_narrow(work.path());

    let (ok, stdout, stderr) = doctor(
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("LECTOR_SECRET_KEY", harness::TEST_SECRET_KEY),
            ("LECTOR_ENGINE", "textract"),
            ("LECTOR_S3_BUCKET", BUCKET),
            // The stand-in's bucket is in us-east-1.
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_ENDPOINT_URL_S3", s3.endpoint.as_str()),
            ("AWS_ENDPOINT_URL_TEXTRACT", textract_endpoint.as_str()),
            ("AWS_ENDPOINT_URL_SQS", sqs_endpoint.as_str()),
            (
                "LECTOR_TEXTRACT_SNS_TOPIC_ARN",
                "arn:aws:sns:eu-west-1:123456789012:lector-notices",
            ),
            (
                "LECTOR_TEXTRACT_SNS_ROLE_ARN",
                "arn:aws:iam::123456789012:role/lector-textract-publish",
            ),
            ("LECTOR_TEXTRACT_SQS_QUEUE_URL", queue_url.as_str()),
            ("LECTOR_JOB_LEASE_SECS", "15"),
            ("LECTOR_TEXTRACT_POLL_MAX_MS", "20000"),
        ],
        &bundle,
    )
    .await;
    println!("{stdout}");
    assert!(!ok, "{stdout}");
    assert_a_problem_each(&stdout, MISWIRED);
    assert!(
        lines_for(&stdout, "database")[0].starts_with("ok "),
        "{stdout}"
    );
    assert!(lines_for(&stdout, "s3")[0].starts_with("ok "), "{stdout}");
    assert!(
        lines_for(&stdout, "procfile")[0].starts_with("ok "),
        "{stdout}"
    );
    let problems = stdout.lines().filter(|l| l.starts_with("PROBLEM")).count();
    assert!(
        stderr.contains(&format!("{problems} problems found")),
        "{stderr}"
    );
}

/// What a well-wired deployment's doctor says: per check, words of its `ok` line.
const WELL_WIRED: &[(&str, &str)] = &[
    ("database", "postgres answers"),
    ("database-tls", "not required for local 127.0.0.1"),
    ("migrations", "all applied"),
    ("s3", "bucket lector-test is there"),
    ("region", "both in us-east-1"),
    ("textract", "answers"),
    ("notices", "topic AmazonTextract-lector"),
    ("notices-queue", "may be read"),
    (
        "lease",
        "60 s, renewed every 5 s while a job runs and after each Textract poll",
    ),
    ("procfile", "web: ./lector serve"),
    ("binary", "executable"),
    (
        "nginx-body",
        "client_max_body_size 110 MiB covers the upload limit",
    ),
    ("nginx-timeout", "proxy_read_timeout 300 s"),
];

/// Each check has exactly one line, `ok`, with its words.
fn assert_one_ok_line_each(stdout: &str, checks: &[(&str, &str)]) {
    for (check, words) in checks {
        let lines = lines_for(stdout, check);
        assert!(
            lines.len() == 1 && lines[0].starts_with("ok ") && lines[0].contains(words),
            "{check}: expected one ok line with {words:?} in\n{stdout}"
        );
    }
}

/// What the mis-wired deployment's doctor says: per check, words of a `PROBLEM` line.
const MISWIRED: &[(&str, &str)] = &[
    ("migrations", "a new database needs `lector migrate`"),
    (
        "region",
        "the bucket lector-test is in us-east-1 but Lector calls Textract in eu-west-1",
    ),
    ("textract", "Textract did not answer as it should"),
    (
        "notices",
        "\"lector-notices\" does not start with AmazonTextract",
    ),
    ("notices-queue", "-missing"),
    ("lease", "would lose its job between two polls"),
    ("binary", "no lector binary"),
    (
        "nginx-body",
        "client_max_body_size 1 MiB is smaller than this environment's LECTOR_MAX_UPLOAD_BYTES (100 MiB)",
    ),
    ("nginx-timeout", "proxy_read_timeout 60 s (nginx's default)"),
];

/// Each check has a `PROBLEM` line with its words.
fn assert_a_problem_each(stdout: &str, checks: &[(&str, &str)]) {
    for (check, words) in checks {
        let lines = lines_for(stdout, check);
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("PROBLEM ") && line.contains(words)),
            "{check}: expected a problem with {words:?} in\n{stdout}"
        );
    }
}

/// A bundle whose nginx keeps its 60 s timeout and lets only 1 MiB through.
fn a_bundle_whose_nginx_is_too_narrow(dir: &Path) -> PathBuf {
    let bundle = dir.to_owned();
    std::fs::create_dir_all(bundle.join(".platform/nginx/conf.d")).unwrap();
    std::fs::write(
        bundle.join(".platform/nginx/conf.d/lector.conf"),
        "client_max_body_size 1m;\n",
    )
    .unwrap();
    std::fs::write(bundle.join("Procfile"), "web: ./lector serve\n").unwrap();

    bundle
}
