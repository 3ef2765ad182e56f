//! Reading the configuration: defaults, names in errors, documentation of every variable.

use super::*;

fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

#[test]
fn defaults_run_on_a_laptop_with_sqlite() {
    let config = config(&[]).unwrap();
    assert!(!config.is_postgres());
    assert_eq!(config.bind.port(), 8080);
    assert_eq!(config.max_upload_bytes, 100 * 1024 * 1024);
    assert_eq!(config.max_pages, 2000);
}

#[test]
fn port_from_elastic_beanstalk_is_used() {
    assert_eq!(config(&[("PORT", "5000")]).unwrap().bind.port(), 5000);
}

#[test]
fn an_invalid_value_names_the_variable() {
    let err = config(&[("LECTOR_MAX_PAGES", "many")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("LECTOR_MAX_PAGES"), "{err}");
    let err = config(&[("DATABASE_URL", "mysql://x")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("DATABASE_URL"), "{err}");
}

#[test]
fn the_database_password_never_appears_in_debug_output() {
    let config = config(&[("DATABASE_URL", "postgres://u:hunter2@db/lector")]).unwrap();
    assert!(config.is_postgres());
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn elastic_beanstalk_rds_variables_make_a_tls_postgres_url() {
    let rds = [
        (
            "RDS_HOSTNAME",
            "lector.cluster-abc.eu-west-1.rds.amazonaws.com",
        ),
        ("RDS_PORT", "5432"),
        ("RDS_DB_NAME", "lector"),
        ("RDS_USERNAME", "lector"),
        ("RDS_PASSWORD", "p@ss/w:rd"),
    ];
    let parsed = config(&rds).unwrap();
    assert!(parsed.is_postgres());
    assert_eq!(
        parsed.database_url.expose_secret(),
        "postgres://lector:p%40ss%2Fw%3Ard@lector.cluster-abc.eu-west-1.rds.amazonaws.com:5432/lector?sslmode=require"
    );
    assert!(!format!("{parsed:?}").contains("p@ss"));
    let err = config(&rds[..2]).unwrap_err().to_string();
    assert!(err.contains("RDS_USERNAME"), "{err}");
    let mut explicit = rds.to_vec();
    explicit.push(("DATABASE_URL", "postgres://other/db"));
    assert_eq!(
        config(&explicit).unwrap().database_url.expose_secret(),
        "postgres://other/db"
    );
}

#[test]
fn textract_and_s3_need_a_bucket() {
    let err = config(&[("LECTOR_ENGINE", "textract")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("LECTOR_S3_BUCKET"), "{err}");
    let err = config(&[("LECTOR_BLOB_STORE", "s3")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("LECTOR_S3_BUCKET"), "{err}");
    let ok = config(&[("LECTOR_ENGINE", "textract"), ("LECTOR_S3_BUCKET", "b")]).unwrap();
    assert_eq!(ok.engine.as_str(), "textract");
    assert_eq!(ok.s3_prefix, "originals/");
    assert!(config(&[("LECTOR_ENGINE", "magic")]).is_err());
    let err = config(&[("LECTOR_ENGINE", "hybrid")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("LECTOR_S3_BUCKET"), "{err}");
    let hybrid = config(&[("LECTOR_ENGINE", "hybrid"), ("LECTOR_S3_BUCKET", "b")]).unwrap();
    assert_eq!(hybrid.engine.as_str(), "hybrid");
}

#[test]
fn ocr_settings_are_read_and_checked() {
    let defaults = config(&[]).unwrap();
    assert_eq!(defaults.ocr.mode, OcrMode::Auto);
    assert_eq!(defaults.ocr.languages, "eng");
    assert_eq!(defaults.ocr.dpi, 300);
    let set = config(&[
        ("LECTOR_OCR", "force"),
        ("LECTOR_OCR_LANGUAGES", "eng+deu"),
        ("LECTOR_OCR_DPI", "200"),
    ])
    .unwrap();
    assert_eq!(set.ocr.mode, OcrMode::Force);
    assert_eq!(set.ocr.languages, "eng+deu");
    assert!(set.extract_cpu_limit(10, OcrMode::Force) > set.extract_cpu_limit(10, OcrMode::Off));
    let err = config(&[("LECTOR_OCR", "always")]).unwrap_err().to_string();
    assert!(err.contains("LECTOR_OCR"), "{err}");
    assert!(config(&[("LECTOR_OCR_DPI", "10")]).is_err());
    assert!(config(&[("LECTOR_OCR_MAX_JUNK_RATIO", "2")]).is_err());
}

#[test]
fn account_and_rate_limit_settings_are_read_and_checked() {
    let defaults = config(&[]).unwrap();
    assert_eq!(defaults.signup, SignupPolicy::FirstOnly);
    assert!(!defaults.is_https());
    assert_eq!(defaults.rate_limits.login_per_ip, 20);
    let set = config(&[
        ("LECTOR_SIGNUP", "closed"),
        ("LECTOR_PUBLIC_URL", "https://lector.example/"),
        ("LECTOR_RATE_UPLOADS_PER_USER", "0"),
        ("LECTOR_TRUSTED_PROXY_HOPS", "2"),
    ])
    .unwrap();
    assert_eq!(set.signup, SignupPolicy::Closed);
    assert!(set.is_https());
    assert_eq!(set.public_url.as_deref(), Some("https://lector.example"));
    assert_eq!(set.rate_limits.uploads_per_user, 0);
    assert_eq!(set.trusted_proxy_hops, 2);
    for (name, value) in [
        ("LECTOR_SIGNUP", "maybe"),
        ("LECTOR_PUBLIC_URL", "lector.example"),
        ("LECTOR_PASSWORD_MIN_LENGTH", "4"),
    ] {
        let err = config(&[(name, value)]).unwrap_err().to_string();
        assert!(err.contains(name), "{err}");
    }
}

#[test]
fn the_time_limit_grows_with_the_page_count() {
    let config = config(&[]).unwrap();
    assert!(config.extract_timeout(100) > config.extract_timeout(1));
}

#[test]
fn every_variable_config_reads_is_documented() {
    use std::{cell::RefCell, collections::BTreeSet};
    // Config is asked rather than its source searched, so a name built at run time or
    // read through a helper counts too. The `RDS_*` variables and `LECTOR_DATABASE_SSLMODE`
    // are read only when `RDS_HOSTNAME` is set without `DATABASE_URL`: a variable read only
    // under some other condition needs its own case here.
    let cases: &[&[(&str, &str)]] = &[
        &[],
        &[
            ("RDS_HOSTNAME", "db.example"),
            ("RDS_DB_NAME", "lector"),
            ("RDS_USERNAME", "lector"),
            ("RDS_PASSWORD", "secret"),
        ],
    ];
    let asked = RefCell::new(BTreeSet::new());
    for vars in cases {
        Config::from_lookup(|name| {
            asked.borrow_mut().insert(name.to_owned());
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
        .unwrap();
    }
    let mut names = asked.into_inner();
    assert!(names.contains("LECTOR_DATABASE_SSLMODE"), "{names:?}");
    // Read outside Config: by the command line (`extract`, `render`), by the log filter,
    // and by the OCR engine (Tesseract's own variable).
    names.extend(["LECTOR_PDF_PASSWORD", "RUST_LOG", "TESSDATA_PREFIX"].map(String::from));

    let env_example = include_str!("../../.env.example");
    let in_env_example = |name: &str| {
        env_example
            .lines()
            .map(|line| line.trim_start_matches(['#', ' ']))
            .any(|line| line.starts_with(&format!("{name}=")))
    };
    // The first cell of a row of one of the tables in docs/configuration.md.
    let table = include_str!("../../docs/configuration.md");
    let in_table = |name: &str| {
        table
            .lines()
            .filter_map(|line| line.strip_prefix('|')?.split('|').next())
            .any(|cell| cell.contains(&format!("`{name}`")))
    };
    let missing: Vec<String> = names
        .iter()
        .flat_map(|name| {
            let env = (!in_env_example(name)).then(|| format!("{name} (.env.example)"));
            let doc = (!in_table(name)).then(|| format!("{name} (docs/configuration.md)"));
            env.into_iter().chain(doc)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "read but not documented: {}",
        missing.join(", ")
    );
}
