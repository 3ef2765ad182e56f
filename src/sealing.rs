//! Secrets kept at rest, sealed: the password of an encrypted PDF (kept so that workers and
//! re-processing can open it) and webhook signing secrets (kept to sign every delivery) are
//! stored encrypted under a key that is not in the database, so whoever reads the database
//! (a backup, a leaked dump, the SQLite file) does not read them.
//!
//! XChaCha20-Poly1305 (RustCrypto), a random 24-byte nonce per value, and the row the value
//! belongs to as associated data, so a sealed value copied to another row does not open. A
//! sealed value names its key (the first bytes of the key's SHA-256), so older keys can stay
//! configured while values are sealed again under the current one.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, AeadCore, OsRng, Payload},
};
use rand::Rng;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};
use sha2::{Digest, Sha256};

/// Every sealed value starts with this, then the key's id, then the hex of nonce and
/// ciphertext: `sealed1:<key id>:<hex>`.
pub const PREFIX: &str = "sealed1:";

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;

/// Where the key comes from, as configured.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `LECTOR_SECRET_KEY`: 64 hexadecimal characters.
    Given(SecretString),
    /// `LECTOR_SECRET_KEY_FILE`, or beside the SQLite database by default: read, or made
    /// (readable by this user only) when it does not exist yet.
    File(PathBuf),
    /// A database that lives only in memory: a key that lives as long.
    Ephemeral,
    /// None configured (Postgres without `LECTOR_SECRET_KEY`).
    Missing,
}

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Sealed under a key this process was not given.
    #[error(
        "it was sealed under key {0}, which is not configured (LECTOR_SECRET_KEY, or LECTOR_SECRET_KEY_PREVIOUS while keys are rotated)"
    )]
    UnknownKey(String),
    /// Not a sealed value, or altered, or moved from another row.
    #[error("it is damaged or belongs to another row")]
    Damaged,
}

/// One 256-bit key.
struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn new(bytes: &SecretBox<[u8; KEY_BYTES]>) -> Self {
        let digest = Sha256::digest(bytes.expose_secret());
        Key {
            id: hex::encode(&digest[..4]),
            cipher: XChaCha20Poly1305::new(bytes.expose_secret().into()),
        }
    }

    fn parse(text: &str, name: &str) -> anyhow::Result<Self> {
        let mut bytes = SecretBox::new(Box::new([0u8; KEY_BYTES]));
        hex::decode_to_slice(text.trim(), bytes.expose_secret_mut()).map_err(|_| {
            anyhow::anyhow!(
                "{name} must be {} hexadecimal characters (make one with `openssl rand -hex 32`)",
                2 * KEY_BYTES
            )
        })?;
        Ok(Key::new(&bytes))
    }
}

/// The current key, which seals, and older ones, which still open.
pub struct Keyring {
    current: Key,
    previous: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.id)
            .field("previous", &self.previous.len())
            .finish()
    }
}

impl Keyring {
    /// The keyring `source` and `previous` describe; `None` when no key is configured.
    pub fn load(source: &KeySource, previous: &[SecretString]) -> anyhow::Result<Option<Self>> {
        let current = match source {
            KeySource::Given(text) => Key::parse(text.expose_secret(), "LECTOR_SECRET_KEY")?,
            KeySource::File(path) => Key::parse(
                read_or_make_key_file(path)?.expose_secret(),
                &format!("the key in {}", path.display()),
            )?,
            KeySource::Ephemeral => Key::new(&SecretBox::new(Box::new(rand::rng().random()))),
            KeySource::Missing => return Ok(None),
        };
        let previous = previous
            .iter()
            .map(|key| Key::parse(key.expose_secret(), "LECTOR_SECRET_KEY_PREVIOUS"))
            .collect::<anyhow::Result<_>>()?;
        Ok(Some(Keyring { current, previous }))
    }

    /// A keyring of one random key (tests, and databases that live in memory).
    pub fn random() -> Self {
        Keyring {
            current: Key::new(&SecretBox::new(Box::new(rand::rng().random()))),
            previous: Vec::new(),
        }
    }

    /// `secret` sealed under the current key, bound to `row` (e.g. `documents.pdf_password
    /// <document id>`).
    pub fn seal(&self, secret: &str, row: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .current
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.as_bytes(),
                    aad: row.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any message under 256 GiB");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", self.current.id, hex::encode(bytes))
    }

    /// The secret `sealed` holds, when it was sealed for `row` under a key of this ring.
    pub fn open(&self, sealed: &str, row: &str) -> Result<SecretString, OpenError> {
        let (key_id, body) = sealed
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .ok_or(OpenError::Damaged)?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == key_id)
            .ok_or_else(|| OpenError::UnknownKey(key_id.to_owned()))?;
        let bytes = hex::decode(body).map_err(|_| OpenError::Damaged)?;
        if bytes.len() < NONCE_BYTES {
            return Err(OpenError::Damaged);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let plain = key
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: row.as_bytes(),
                },
            )
            .map_err(|_| OpenError::Damaged)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| OpenError::Damaged)
    }

    /// True when `stored` is sealed under the current key (nothing to do at a rotation).
    pub fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(key_id, _)| key_id == self.current.id)
    }
}

/// True when `stored` is a sealed value (of any key), not a plaintext one left by a version
/// of Lector that did not seal.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// The key in `path`; a new random one is written there first when the file does not exist.
fn read_or_make_key_file(path: &Path) -> anyhow::Result<SecretString> {
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok(SecretString::from(text)),
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(error)
                .with_context(|| format!("reading the secret key {}", path.display()));
        }
        Err(_) => {}
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the folder of {}", path.display()))?;
    }
    let key = SecretString::from(hex::encode(rand::rng().random::<[u8; KEY_BYTES]>()));
    write_private(path, key.expose_secret())
        .with_context(|| format!("writing a new secret key to {}", path.display()))?;
    tracing::info!(path = %path.display(), "made a new key for the secrets kept in the database: keep it with the database, and out of its backups");
    // Another process may have made the file at the same moment: the one on disk wins.
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(SecretString::from(text)),
        Err(error) => {
            Err(error).with_context(|| format!("reading the secret key {}", path.display()))
        }
    }
}

/// Writes `text` to a new file at `path` that only this user can read; leaves an existing
/// file as it is.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

/// Checks a key given in configuration, so a malformed one is refused at start.
pub fn check_key(text: &str, name: &str) -> anyhow::Result<()> {
    if text.trim().len() != 2 * KEY_BYTES || hex::decode(text.trim()).is_err() {
        bail!(
            "{name} must be {} hexadecimal characters (make one with `openssl rand -hex 32`)",
            2 * KEY_BYTES
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(key: &str, previous: &[&str]) -> Keyring {
        Keyring::load(
            &KeySource::Given(SecretString::from(key.to_owned())),
            &previous
                .iter()
                .map(|k| SecretString::from((*k).to_owned()))
                .collect::<Vec<_>>(),
        )
        .unwrap()
        .unwrap()
    }

    const KEY_A: &str = "0001020304050607080900010203040506070809000102030405060708090001";
    const KEY_B: &str = "ff01020304050607080900010203040506070809000102030405060708090001";

    #[test]
    fn a_sealed_secret_opens_only_for_its_row_and_hides_the_secret() {
        let keys = ring(KEY_A, &[]);
        let sealed = keys.seal("hunter2 and more", "documents.pdf_password 1");
        assert!(sealed.starts_with(PREFIX) && is_sealed(&sealed));
        assert!(!sealed.contains("hunter2"));
        assert_ne!(
            sealed,
            keys.seal("hunter2 and more", "documents.pdf_password 1"),
            "a new nonce every time"
        );
        let opened = keys.open(&sealed, "documents.pdf_password 1").unwrap();
        assert_eq!(opened.expose_secret(), "hunter2 and more");
        assert!(matches!(
            keys.open(&sealed, "documents.pdf_password 2"),
            Err(OpenError::Damaged)
        ));
        let mut altered = sealed.clone();
        let last = altered.pop().unwrap();
        altered.push(if last == '0' { '1' } else { '0' });
        assert!(keys.open(&altered, "documents.pdf_password 1").is_err());
        assert!(matches!(
            keys.open("hunter2", "documents.pdf_password 1"),
            Err(OpenError::Damaged)
        ));
    }

    #[test]
    fn an_old_key_still_opens_and_an_unknown_one_is_named() {
        let old = ring(KEY_A, &[]);
        let sealed = old.seal("s", "row");
        let rotated = ring(KEY_B, &[KEY_A]);
        assert_eq!(rotated.open(&sealed, "row").unwrap().expose_secret(), "s");
        assert!(!rotated.is_current(&sealed));
        assert!(rotated.is_current(&rotated.seal("s", "row")));
        match ring(KEY_B, &[]).open(&sealed, "row") {
            Err(OpenError::UnknownKey(id)) => assert_eq!(id, old.current.id),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_key_file_is_made_once_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("secret.key");
        let first = Keyring::load(&KeySource::File(path.clone()), &[])
            .unwrap()
            .unwrap();
        let again = Keyring::load(&KeySource::File(path.clone()), &[])
            .unwrap()
            .unwrap();
        assert_eq!(first.current.id, again.current.id);
        let sealed = first.seal("x", "row");
        assert_eq!(again.open(&sealed, "row").unwrap().expose_secret(), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(Keyring::load(&KeySource::Missing, &[]).unwrap().is_none());
        assert!(check_key("abc", "LECTOR_SECRET_KEY").is_err());
        assert!(check_key(KEY_A, "LECTOR_SECRET_KEY").is_ok());
    }
}
