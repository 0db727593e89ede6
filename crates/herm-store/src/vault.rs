//! The vault: XChaCha20-Poly1305 encryption of secret values under the master key.
//!
//! Each value gets a fresh random 192-bit nonce and is bound to its secret id as associated
//! data, so a ciphertext copied to another row does not decrypt. Plaintexts are returned in
//! [`SecretValue`], which zeroises on drop and never prints.

use crate::{Error, Result};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use herm_types::SecretId;
use rand::RngCore;
use std::path::Path;
use zeroize::{Zeroize, Zeroizing};

/// A decrypted secret value. `Debug` never shows it; memory is wiped on drop.
#[derive(Clone)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }
    /// The raw value, for the one place that must use it (an outgoing header, say).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// The 256-bit master key.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self> {
        let mut bytes = hex::decode(s.trim()).map_err(|_| Error::Crypto)?;
        if bytes.len() != 32 {
            bytes.zeroize();
            return Err(Error::Crypto);
        }
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(&bytes);
        bytes.zeroize();
        Ok(Self(k))
    }

    /// Reads the key file, or creates it (mode 0600) with a fresh random key.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        use std::io::Write;
        match std::fs::read_to_string(path) {
            Ok(s) => Self::from_hex(&s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = Zeroizing::new([0u8; 32]);
                rand::rng().fill_bytes(k.as_mut());
                let mut hexed = Zeroizing::new(hex::encode(k.as_ref()));
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(path)?;
                f.write_all(hexed.as_bytes())?;
                f.sync_all()?;
                hexed.zeroize();
                Ok(Self(k))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Encrypts and decrypts secret values.
pub struct Vault {
    cipher: XChaCha20Poly1305,
}

impl Vault {
    pub fn new(key: &MasterKey) -> Result<Self> {
        let cipher = XChaCha20Poly1305::new_from_slice(key.0.as_ref()).map_err(|_| Error::Crypto)?;
        Ok(Self { cipher })
    }

    /// Returns `(nonce, ciphertext)`.
    pub fn seal(&self, id: &SecretId, value: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: value.as_bytes(), aad: id.as_str().as_bytes() })
            .map_err(|_| Error::Crypto)?;
        Ok((nonce.to_vec(), ct))
    }

    pub fn open(&self, id: &SecretId, nonce: &[u8], ct: &[u8]) -> Result<SecretValue> {
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| Error::Crypto)?;
        let pt = self
            .cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad: id.as_str().as_bytes() })
            .map_err(|_| Error::Crypto)?;
        let s = String::from_utf8(pt).map_err(|e| {
            let mut b = e.into_bytes();
            b.zeroize();
            Error::Crypto
        })?;
        Ok(SecretValue::new(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_aad_binding() {
        let dir = tempfile_dir();
        let key = MasterKey::load_or_create(&dir.join("k")).unwrap();
        let again = MasterKey::load_or_create(&dir.join("k")).unwrap();
        assert_eq!(key.0.as_ref(), again.0.as_ref());
        let v = Vault::new(&key).unwrap();
        let id = SecretId::new();
        let (n, ct) = v.seal(&id, "hunter2").unwrap();
        assert!(!ct.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(v.open(&id, &n, &ct).unwrap().expose(), "hunter2");
        assert!(v.open(&SecretId::new(), &n, &ct).is_err());
        assert_eq!(format!("{:?}", v.open(&id, &n, &ct).unwrap()), "SecretValue(<redacted>)");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("k")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("herm-vault-{}", herm_types::EventId::new()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
