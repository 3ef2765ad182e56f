//! What `lector doctor` reads from an Elastic Beanstalk bundle (the zip, or the unpacked
//! directory an instance runs from): the Procfile, the nginx settings under `.platform/` and
//! the environment properties set in `.ebextensions/`.

use std::{
    collections::BTreeMap,
    io::Read,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;

/// The parts of a bundle that decide whether it can work.
#[derive(Debug, Default)]
pub struct Bundle {
    /// Where it was read from.
    pub source: PathBuf,
    /// The text files that configure the platform, by path inside the bundle.
    files: BTreeMap<String, String>,
    /// Whether the `lector` binary is in it, and executable.
    pub binary: Option<bool>,
}

impl Bundle {
    /// Reads a bundle from a `.zip` file or a directory.
    pub fn open(path: &Path) -> anyhow::Result<Bundle> {
        let mut bundle = Bundle {
            source: path.to_owned(),
            ..Bundle::default()
        };
        if path.is_dir() {
            bundle.read_dir(path)?;
        } else {
            bundle.read_zip(path)?;
        }
        Ok(bundle)
    }

    fn read_dir(&mut self, root: &Path) -> anyhow::Result<()> {
        let binary = root.join("lector");
        if let Ok(meta) = std::fs::metadata(&binary) {
            self.binary = Some(is_executable(&meta));
        }
        let procfile = root.join("Procfile");
        if procfile.is_file() {
            self.files
                .insert("Procfile".into(), std::fs::read_to_string(&procfile)?);
        }
        for top in [".ebextensions", ".platform"] {
            let mut pending = vec![root.join(top)];
            while let Some(dir) = pending.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries {
                    let path = entry?.path();
                    if path.is_dir() {
                        pending.push(path);
                    } else if let Ok(text) = std::fs::read_to_string(&path) {
                        let name = path
                            .strip_prefix(root)?
                            .to_string_lossy()
                            .replace('\\', "/");
                        self.files.insert(name, text);
                    }
                }
            }
        }
        Ok(())
    }

    fn read_zip(&mut self, path: &Path) -> anyhow::Result<()> {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut archive = zip::ZipArchive::new(file)
            .with_context(|| format!("{} is not a zip file", path.display()))?;
        for index in 0..archive.len() {
            let mut entry = archive.by_index(index)?;
            let name = entry.name()?.trim_start_matches("./").to_owned();
            if name == "lector" {
                // Zip files made on Unix keep the mode; one without it cannot be run.
                self.binary = Some(entry.unix_mode().is_some_and(|mode| mode & 0o111 != 0));
            } else if entry.is_file()
                && (name == "Procfile"
                    || name.starts_with(".ebextensions/")
                    || name.starts_with(".platform/"))
            {
                let mut text = String::new();
                entry
                    .read_to_string(&mut text)
                    .with_context(|| format!("reading {name} in {}", path.display()))?;
                self.files.insert(name, text);
            }
        }
        Ok(())
    }

    /// The Procfile's text, if the bundle has one.
    pub fn procfile(&self) -> Option<&str> {
        self.files.get("Procfile").map(String::as_str)
    }

    /// The command of the Procfile's `web` process.
    pub fn web_command(&self) -> Option<&str> {
        self.procfile()?.lines().find_map(|line| {
            let (name, command) = line.split_once(':')?;
            (name.trim() == "web").then(|| command.trim())
        })
    }

    /// The nginx settings of every `.conf` file under `.platform/nginx/` (later files win, as
    /// nginx reads them in name order and refuses duplicates anyway).
    pub fn nginx(&self) -> NginxSettings {
        let mut settings = NginxSettings::default();
        for (name, text) in &self.files {
            if name.starts_with(".platform/nginx/") && name.ends_with(".conf") {
                settings.read(text);
            }
        }
        settings
    }

    /// An environment property set in `.ebextensions/*.config`
    /// (`aws:elasticbeanstalk:application:environment`), e.g. `LECTOR_MAX_UPLOAD_BYTES`.
    pub fn environment_property(&self, name: &str) -> Option<String> {
        self.files
            .iter()
            .filter(|(path, _)| path.starts_with(".ebextensions/") && path.ends_with(".config"))
            .flat_map(|(_, text)| text.lines())
            .find_map(|line| {
                let line = line.split(" #").next().unwrap_or(line).trim();
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then(|| value.trim().trim_matches(['"', '\'']).to_owned())
            })
    }
}

fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.is_file() && meta.permissions().mode() & 0o111 != 0
}

/// The nginx directives that decide whether uploads get through. `None`: not set, so
/// nginx's default applies.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NginxSettings {
    /// `client_max_body_size` in bytes (0: no limit). Default 1 MiB.
    pub client_max_body_size: Option<u64>,
    /// `proxy_read_timeout`. Default 60 s.
    pub proxy_read_timeout: Option<Duration>,
    /// `proxy_send_timeout`. Default 60 s.
    pub proxy_send_timeout: Option<Duration>,
    /// `client_body_timeout`. Default 60 s.
    pub client_body_timeout: Option<Duration>,
}

/// nginx's defaults for the settings above.
pub const NGINX_DEFAULT_BODY: u64 = 1024 * 1024;
pub const NGINX_DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl NginxSettings {
    fn read(&mut self, text: &str) {
        let without_comments: String = text
            .lines()
            .map(|line| line.split('#').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        for statement in without_comments.split([';', '{', '}']) {
            let mut words = statement.split_whitespace();
            let (Some(directive), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            match directive {
                "client_max_body_size" => self.client_max_body_size = parse_size(value),
                "proxy_read_timeout" => self.proxy_read_timeout = parse_time(value),
                "proxy_send_timeout" => self.proxy_send_timeout = parse_time(value),
                "client_body_timeout" => self.client_body_timeout = parse_time(value),
                _ => {}
            }
        }
    }

    /// The effective body limit (0: none).
    pub fn body_limit(&self) -> u64 {
        self.client_max_body_size.unwrap_or(NGINX_DEFAULT_BODY)
    }
}

/// An nginx size: bytes, or a number with `k`, `m` or `g`.
pub fn parse_size(value: &str) -> Option<u64> {
    let value = value.trim();
    let (digits, unit) = match value.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => value.split_at(at),
        None => (value, ""),
    };
    let number: u64 = digits.parse().ok()?;
    let factor = match unit {
        "" => 1,
        "k" | "K" => 1024,
        "m" | "M" => 1024 * 1024,
        "g" | "G" => 1024 * 1024 * 1024,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// An nginx time: seconds, or parts such as `1m30s` (`ms`, `s`, `m`, `h`, `d`).
pub fn parse_time(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = value;
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit())?;
        let number: u64 = rest[..digits_end].parse().ok()?;
        rest = &rest[digits_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_end] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number * 60),
            "h" => Duration::from_secs(number * 3600),
            "d" => Duration::from_secs(number * 86_400),
            _ => return None,
        };
        total += part;
        rest = &rest[unit_end..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_sizes_and_times_are_read_as_nginx_reads_them() {
        assert_eq!(parse_size("110m"), Some(110 * 1024 * 1024));
        assert_eq!(parse_size("2G"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_size("512k"), Some(512 * 1024));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("10x"), None);
        assert_eq!(parse_size("m"), None);
        assert_eq!(parse_time("300"), Some(Duration::from_secs(300)));
        assert_eq!(parse_time("300s"), Some(Duration::from_secs(300)));
        assert_eq!(parse_time("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_time("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_time("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_time("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_time("soon"), None);
        assert_eq!(parse_time("5q"), None);
    }

    #[test]
    fn directives_are_found_past_comments_and_blocks() {
        let mut settings = NginxSettings::default();
        settings.read(
            "# client_max_body_size 1m;\nclient_max_body_size 20m; # uploads\n\
             location / { proxy_read_timeout 2m; }\nproxy_send_timeout\n 90s;",
        );
        assert_eq!(settings.client_max_body_size, Some(20 * 1024 * 1024));
        assert_eq!(settings.proxy_read_timeout, Some(Duration::from_secs(120)));
        assert_eq!(settings.proxy_send_timeout, Some(Duration::from_secs(90)));
        assert_eq!(settings.client_body_timeout, None);
        assert_eq!(NginxSettings::default().body_limit(), NGINX_DEFAULT_BODY);
    }

    #[test]
    fn the_repository_is_a_bundle_with_a_web_process_and_generous_nginx_limits() {
        let bundle = Bundle::open(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert_eq!(bundle.web_command(), Some("./lector serve"));
        assert!(bundle.nginx().body_limit() >= 100 * 1024 * 1024);
        assert!(bundle.nginx().proxy_read_timeout.unwrap() >= Duration::from_secs(120));
        assert_eq!(
            bundle.environment_property("LECTOR_MAX_UPLOAD_BYTES"),
            Some("104857600".into())
        );
        assert_eq!(
            bundle.environment_property("LECTOR_LOG_FORMAT"),
            Some("json".into())
        );
        assert_eq!(bundle.environment_property("NOT_THERE"), None);
    }
}
