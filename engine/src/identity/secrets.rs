//! Secrets at rest: connector credentials, webhook secrets and Basin's own
//! keys are sealed with AES-256-GCM under one data key before they reach the
//! catalog, with the secret's name as associated data (a sealed value moved
//! to another name does not open).
//!
//! The data key comes from `secrets.key` (config or `BASIN_SECRETS_KEY`,
//! base64 of 32 bytes) or from `<data_dir>/secret.key`, generated on first
//! start. [`Engine::rotate_data_key`] re-seals every secret under a new key in
//! one catalog transaction; the new key is written beside the old one first,
//! so a crash at any point leaves a key that opens every row.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::catalog::{CatalogStore, SecretRecord};
use crate::{Engine, Error, Result};

/// The key file under the data directory.
pub const KEY_FILE: &str = "secret.key";
/// A new key during rotation, before it replaces [`KEY_FILE`].
const NEXT_KEY_FILE: &str = "secret.key.next";

const NONCE_LEN: usize = 12;

/// An AES-256 data key. Its `id` (a hash prefix) is stored with each sealed
/// value, so a value sealed under another key is reported, not misread.
#[derive(Clone)]
pub struct DataKey {
    id: String,
    key: [u8; 32],
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl DataKey {
    fn from_bytes(key: [u8; 32]) -> Self {
        let id = hex::encode(&Sha256::digest(key)[..8]);
        Self { id, key }
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let key = Aes256Gcm::generate_key(OsRng);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&key);
        Self::from_bytes(bytes)
    }

    /// A key from its base64 text (32 bytes).
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| Error::InvalidInput("secrets.key is not valid base64".into()))?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            Error::InvalidInput("secrets.key must be 32 bytes (44 base64 characters)".into())
        })?;
        Ok(Self::from_bytes(key))
    }

    /// The key as base64 text, as key files hold it.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.key)
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plaintext` for the secret called `name`: base64 of nonce and ciphertext.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> Result<String> {
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.key));
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| Error::Internal("sealing a secret failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(BASE64.encode(out))
    }

    /// Opens what [`DataKey::seal`] sealed for `name`.
    pub fn open(&self, name: &str, sealed: &str) -> Result<Vec<u8>> {
        let bytes = BASE64
            .decode(sealed)
            .map_err(|_| Error::Internal(format!("secret `{name}` is not valid base64")))?;
        if bytes.len() < NONCE_LEN {
            return Err(Error::Internal(format!("secret `{name}` is truncated")));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.key));
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| {
                Error::Internal(format!(
                    "secret `{name}` does not open with the data key (tampered, or sealed under another key)"
                ))
            })
    }
}

/// Where the data key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// Given in configuration (base64).
    Configured(String),
    /// The key file in the data directory (generated when missing).
    File,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Configured(_) => f.write_str("Configured(<redacted>)"),
            Self::File => f.write_str("File"),
        }
    }
}

async fn read_key_file(path: &Path) -> Result<Option<DataKey>> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => DataKey::from_base64(&text).map(Some).map_err(|_| {
            Error::InvalidInput(format!("{} does not hold a valid key", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes a key file readable by the owner only, durably, failing if it exists.
async fn write_key_file(path: &Path, key: &DataKey) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).await?;
    file.write_all(key.to_base64().as_bytes()).await?;
    file.sync_all().await?;
    Ok(())
}

async fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    tokio::fs::File::open(dir).await?.sync_all().await?;
    let _ = dir;
    Ok(())
}

/// Loads the data key, generating the key file on first start, and finishes
/// a rotation a crash interrupted.
pub(crate) async fn load_data_key(
    data_dir: &Path,
    source: &KeySource,
    catalog: &dyn CatalogStore,
) -> Result<DataKey> {
    if let KeySource::Configured(text) = source {
        return DataKey::from_base64(text);
    }
    let path = data_dir.join(KEY_FILE);
    let next_path = data_dir.join(NEXT_KEY_FILE);
    if let Some(next) = read_key_file(&next_path).await? {
        // The rotation's one transaction either re-sealed every row under the
        // new key or none: whichever key the rows use is the key.
        let rows = catalog.all_secrets().await?;
        if rows.iter().any(|r| r.key_id == next.id) {
            tokio::fs::rename(&next_path, &path).await?;
            sync_dir(data_dir).await?;
            tracing::warn!(
                key_id = next.id(),
                "finished an interrupted data key rotation"
            );
            return Ok(next);
        }
        tokio::fs::remove_file(&next_path).await?;
    }
    if let Some(key) = read_key_file(&path).await? {
        return Ok(key);
    }
    let key = DataKey::generate();
    match write_key_file(&path, &key).await {
        Ok(()) => {
            tracing::warn!(
                path = %path.display(),
                "generated the data key that seals secrets; back it up apart from the data directory, or set secrets.key"
            );
            Ok(key)
        }
        // Another process created it first: use theirs.
        Err(_) if tokio::fs::try_exists(&path).await.unwrap_or(false) => read_key_file(&path)
            .await?
            .ok_or_else(|| Error::Internal("data key file vanished".into())),
        Err(e) => Err(e),
    }
}

/// What a key rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The old key's id.
    pub old_key_id: String,
    /// The new key's id.
    pub new_key_id: String,
    /// How many secrets were re-sealed.
    pub resealed: usize,
    /// Where the new key is.
    pub key_file: PathBuf,
}

impl Engine {
    pub(crate) fn data_key(&self) -> DataKey {
        self.inner.data_key.read().expect("data key lock").clone()
    }

    /// A secret sealed under the current data key, for a store that writes
    /// it in the same transaction as the row that uses it.
    pub(crate) fn sealed_secret(&self, name: &str, value: &[u8]) -> Result<SecretRecord> {
        let key = self.data_key();
        let now = Utc::now();
        Ok(SecretRecord {
            name: name.to_owned(),
            key_id: key.id().to_owned(),
            sealed: key.seal(name, value)?,
            created_at: now,
            updated_at: now,
        })
    }

    /// Seals and stores a secret under `name` (replacing any before it).
    pub async fn put_secret(&self, name: &str, value: &[u8]) -> Result<()> {
        let key = self.data_key();
        let now = Utc::now();
        let created_at = self
            .catalog()
            .secret(name)
            .await?
            .map_or(now, |existing| existing.created_at);
        self.catalog()
            .put_secret(&SecretRecord {
                name: name.to_owned(),
                key_id: key.id().to_owned(),
                sealed: key.seal(name, value)?,
                created_at,
                updated_at: now,
            })
            .await
            .map_err(Error::from)
    }

    /// The plaintext of the secret `name`, if it exists.
    pub async fn secret(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(record) = self.catalog().secret(name).await? else {
            return Ok(None);
        };
        let key = self.data_key();
        if record.key_id != key.id() {
            return Err(Error::Internal(format!(
                "secret `{name}` was sealed under key {} but the data key is {}",
                record.key_id,
                key.id()
            )));
        }
        key.open(name, &record.sealed).map(Some)
    }

    /// Deletes the secret `name`; whether it existed.
    pub async fn delete_secret(&self, name: &str) -> Result<bool> {
        self.catalog()
            .delete_secret(name)
            .await
            .map_err(Error::from)
    }

    /// Re-seals every secret under a new data key written to the key file.
    ///
    /// Refused while a server serves the directory (it keeps the key it
    /// started with), and when the key comes from configuration, whose owner
    /// must change it there.
    pub async fn rotate_data_key(&self) -> Result<Rotation> {
        if matches!(self.config().secrets_key, KeySource::Configured(_)) {
            return Err(Error::InvalidInput(format!(
                "the data key comes from secrets.key (or BASIN_SECRETS_KEY) and rotation writes the key file: put the current key in {} and unset secrets.key, then rotate",
                self.data_dir().join(KEY_FILE).display()
            )));
        }
        // A serving process keeps the key it started with: refuse while one runs.
        let _lock = match self.inner.dir_lock {
            Some(_) => None,
            None => Some(crate::lock_data_dir(self.data_dir())?),
        };
        let old = self.data_key();
        let new = DataKey::generate();
        let dir = self.data_dir();
        let next_path = dir.join(NEXT_KEY_FILE);
        if let Some(stale) = read_key_file(&next_path).await? {
            // A key some rows are sealed under must never be thrown away.
            if self
                .catalog()
                .all_secrets()
                .await?
                .iter()
                .any(|r| r.key_id == stale.id)
            {
                return Err(Error::Internal(format!(
                    "an earlier rotation to key {} is unfinished: start basin once to complete it",
                    stale.id
                )));
            }
            tokio::fs::remove_file(&next_path).await?;
        }
        write_key_file(&next_path, &new).await?;
        sync_dir(dir).await?;
        let now = Utc::now();
        let mut resealed = Vec::new();
        for record in self.catalog().all_secrets().await? {
            if record.key_id != old.id() {
                return Err(Error::Internal(format!(
                    "secret `{}` was sealed under key {}, not the current key {}",
                    record.name,
                    record.key_id,
                    old.id()
                )));
            }
            let plaintext = old.open(&record.name, &record.sealed)?;
            resealed.push(SecretRecord {
                key_id: new.id().to_owned(),
                sealed: new.seal(&record.name, &plaintext)?,
                updated_at: now,
                ..record
            });
        }
        self.catalog().reseal_secrets(&resealed).await?;
        let key_file = dir.join(KEY_FILE);
        tokio::fs::rename(&next_path, &key_file).await?;
        sync_dir(dir).await?;
        *self.inner.data_key.write().expect("data key lock") = new.clone();
        Ok(Rotation {
            old_key_id: old.id().to_owned(),
            new_key_id: new.id().to_owned(),
            resealed: resealed.len(),
            key_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_under_their_key_and_name() {
        let key = DataKey::generate();
        let sealed = key.seal("conn:pg:password", b"hunter2-hunter2").unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            key.open("conn:pg:password", &sealed).unwrap(),
            b"hunter2-hunter2"
        );
        assert!(key.open("conn:other:password", &sealed).is_err());
        assert!(
            DataKey::generate()
                .open("conn:pg:password", &sealed)
                .is_err()
        );
        // Nonces differ, so equal secrets do not look equal.
        assert_ne!(
            sealed,
            key.seal("conn:pg:password", b"hunter2-hunter2").unwrap()
        );
    }

    #[test]
    fn keys_round_trip_through_base64_and_debug_hides_them() {
        let key = DataKey::generate();
        let again = DataKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(again.id(), key.id());
        assert!(!format!("{key:?}").contains(&key.to_base64()));
        assert!(DataKey::from_base64("c2hvcnQ=").is_err());
    }
}
