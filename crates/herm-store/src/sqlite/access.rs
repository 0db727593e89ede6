//! API keys, secrets (ciphertext only) and idempotency records in SQLite.

use super::rows::*;
use super::{SqliteStore, micros, now_micros};
use crate::*;
use rusqlite::{OptionalExtension, params};

#[async_trait::async_trait]
impl AccessStore for SqliteStore {
    async fn insert_api_key(&self, k: ApiKeyRecord) -> Result<()> {
        let scopes = to_json(&k.scopes)?;
        self.write(move |c| {
            c.execute(
                "INSERT INTO api_keys (id, name, hash, scopes, created_at) VALUES (?1,?2,?3,?4,?5)",
                params![k.id.as_str(), k.name, k.hash, scopes, micros(k.created_at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn ensure_api_key(&self, k: ApiKeyRecord) -> Result<()> {
        let scopes = to_json(&k.scopes)?;
        self.write(move |c| {
            c.execute(
                "INSERT INTO api_keys (id, name, hash, scopes, created_at) VALUES (?1,?2,?3,?4,?5)
                 ON CONFLICT(hash) DO UPDATE SET revoked_at=NULL, scopes=excluded.scopes",
                params![k.id.as_str(), k.name, k.hash, scopes, micros(k.created_at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>> {
        let hash = hash.to_owned();
        self.read(move |c| one(c, &format!("SELECT {KEY_COLS} FROM api_keys WHERE hash=?1"), [hash], key_row, key_rec))
            .await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        self.read(|c| collect(c, &format!("SELECT {KEY_COLS} FROM api_keys ORDER BY id"), [], key_row, key_rec)).await
    }

    async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<Revocation> {
        let id = id.to_string();
        self.write(move |c| {
            let scopes: Option<String> = c
                .query_row("SELECT scopes FROM api_keys WHERE id=?1 AND revoked_at IS NULL", [&id], |r| r.get(0))
                .optional()?;
            let Some(scopes) = scopes else { return Ok(Revocation::NotFound) };
            if json::<Vec<String>>(&scopes)?.iter().any(|s| s == "admin") {
                let others: i64 = c.query_row(
                    "SELECT COUNT(*) FROM api_keys, json_each(api_keys.scopes) s
                     WHERE api_keys.id != ?1 AND revoked_at IS NULL AND s.value = 'admin'",
                    [&id],
                    |r| r.get(0),
                )?;
                if others == 0 {
                    return Ok(Revocation::LastAdmin);
                }
            }
            c.execute("UPDATE api_keys SET revoked_at=?2 WHERE id=?1", params![id, now_micros()])?;
            Ok(Revocation::Revoked)
        })
        .await
    }

    async fn insert_secret(&self, s: SecretRecord) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO secrets (id, name, description, nonce, ciphertext, created_at) VALUES (?1,?2,?3,?4,?5,?6)",
                params![s.id.as_str(), s.name, s.description, s.nonce, s.ciphertext, micros(s.created_at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_secret(&self, id: &SecretId) -> Result<Option<SecretRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            one(
                c,
                &format!("SELECT {SECRET_COLS} FROM secrets WHERE id=?1 AND deleted_at IS NULL"),
                [id],
                secret_row,
                secret_rec,
            )
        })
        .await
    }

    async fn list_secrets(&self) -> Result<Vec<SecretRecord>> {
        self.read(|c| {
            collect(
                c,
                &format!("SELECT {SECRET_COLS} FROM secrets WHERE deleted_at IS NULL ORDER BY id"),
                [],
                secret_row,
                secret_rec,
            )
        })
        .await
    }

    async fn delete_secret(&self, id: &SecretId) -> Result<bool> {
        let id = id.to_string();
        // The ciphertext is destroyed, not just hidden: a deleted secret must not be recoverable.
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE secrets SET deleted_at=?2, ciphertext=x'', nonce=x'' WHERE id=?1 AND deleted_at IS NULL",
                params![id, now_micros()],
            )? > 0)
        })
        .await
    }

    async fn idempotency_begin(&self, scope: &str, key: &str, fp: &str) -> Result<IdemBegin> {
        let (scope, key, fp) = (scope.to_owned(), key.to_owned(), fp.to_owned());
        self.write(move |c| {
            let now = now_micros();
            // Keys are kept for 24 hours at least; older ones are forgotten lazily.
            c.execute(
                "DELETE FROM idempotency WHERE scope=?1 AND key=?2 AND created_at < ?3",
                params![scope, key, now - 48 * 3600 * 1_000_000],
            )?;
            let row: Option<(String, Option<i64>, Option<Vec<u8>>)> = c
                .query_row(
                    "SELECT fingerprint, status, body FROM idempotency WHERE scope=?1 AND key=?2",
                    params![scope, key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            Ok(match row {
                None => {
                    c.execute(
                        "INSERT INTO idempotency (scope, key, fingerprint, created_at) VALUES (?1,?2,?3,?4)",
                        params![scope, key, fp, now],
                    )?;
                    IdemBegin::Fresh
                }
                Some((f, _, _)) if f != fp => IdemBegin::Mismatch,
                Some((_, Some(status), body)) => {
                    IdemBegin::Replay { status: status as u16, body: body.unwrap_or_default() }
                }
                Some(_) => IdemBegin::InProgress,
            })
        })
        .await
    }

    async fn idempotency_finish(&self, scope: &str, key: &str, status: u16, body: &[u8]) -> Result<()> {
        let (scope, key, body) = (scope.to_owned(), key.to_owned(), body.to_vec());
        self.write(move |c| {
            c.execute(
                "UPDATE idempotency SET status=?3, body=?4 WHERE scope=?1 AND key=?2",
                params![scope, key, status as i64, body],
            )?;
            Ok(())
        })
        .await
    }

    async fn idempotency_abort(&self, scope: &str, key: &str) -> Result<()> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        self.write(move |c| {
            c.execute("DELETE FROM idempotency WHERE scope=?1 AND key=?2 AND status IS NULL", params![scope, key])?;
            Ok(())
        })
        .await
    }
}
