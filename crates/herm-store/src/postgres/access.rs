//! API keys, the vault's ciphertext and idempotency records on PostgreSQL.

use super::{PostgresStore, cols, exec, opt, rows};
use crate::sqlite::rows::*;
use crate::sqlite::{micros, now_micros};
use crate::*;

fn key_of(r: &tokio_postgres::Row) -> Result<ApiKeyRecord> {
    key_rec(cols!(r; 0, 1, 2, 3, 4, 5))
}

fn secret_of(r: &tokio_postgres::Row) -> Result<SecretRecord> {
    secret_rec(cols!(r; 0, 1, 2, 3, 4, 5))
}

#[async_trait::async_trait]
impl AccessStore for PostgresStore {
    async fn insert_api_key(&self, k: ApiKeyRecord) -> Result<()> {
        let c = self.client().await?;
        exec(
            &c,
            "INSERT INTO api_keys (id, name, hash, scopes, created_at) VALUES ($1,$2,$3,$4,$5)",
            &[&k.id.as_str(), &k.name, &k.hash, &to_json(&k.scopes)?, &micros(k.created_at)],
        )
        .await?;
        Ok(())
    }

    async fn ensure_api_key(&self, k: ApiKeyRecord) -> Result<()> {
        let c = self.client().await?;
        exec(
            &c,
            "INSERT INTO api_keys (id, name, hash, scopes, created_at) VALUES ($1,$2,$3,$4,$5)
             ON CONFLICT (hash) DO UPDATE SET revoked_at=NULL, scopes=excluded.scopes",
            &[&k.id.as_str(), &k.name, &k.hash, &to_json(&k.scopes)?, &micros(k.created_at)],
        )
        .await?;
        Ok(())
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>> {
        let c = self.client().await?;
        opt(&c, &format!("SELECT {KEY_COLS} FROM api_keys WHERE hash=$1"), &[&hash], key_of).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let c = self.client().await?;
        rows(&c, &format!("SELECT {KEY_COLS} FROM api_keys ORDER BY id"), &[], key_of).await
    }

    async fn revoke_api_key(&self, id: &ApiKeyId) -> Result<Revocation> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // Every live key locked: two racing revocations are judged one after the other.
        let live: Vec<(String, String)> =
            rows(&tx, "SELECT id, scopes FROM api_keys WHERE revoked_at IS NULL ORDER BY id FOR UPDATE", &[], |r| {
                Ok(cols!(r; 0, 1))
            })
            .await?;
        let Some((_, scopes)) = live.iter().find(|(k, _)| k == id.as_str()) else { return Ok(Revocation::NotFound) };
        let admin = |s: &str| json::<Vec<String>>(s).map(|v| v.iter().any(|s| s == "admin"));
        if admin(scopes)? {
            let mut others = 0;
            for (k, s) in &live {
                if k != id.as_str() && admin(s)? {
                    others += 1;
                }
            }
            if others == 0 {
                return Ok(Revocation::LastAdmin);
            }
        }
        exec(&tx, "UPDATE api_keys SET revoked_at=$2 WHERE id=$1", &[&id.as_str(), &now_micros()]).await?;
        tx.commit().await?;
        Ok(Revocation::Revoked)
    }

    async fn insert_secret(&self, s: SecretRecord) -> Result<()> {
        let c = self.client().await?;
        exec(
            &c,
            "INSERT INTO secrets (id, name, description, nonce, ciphertext, created_at) VALUES ($1,$2,$3,$4,$5,$6)",
            &[&s.id.as_str(), &s.name, &s.description, &s.nonce, &s.ciphertext, &micros(s.created_at)],
        )
        .await?;
        Ok(())
    }

    async fn get_secret(&self, id: &SecretId) -> Result<Option<SecretRecord>> {
        let c = self.client().await?;
        opt(
            &c,
            &format!("SELECT {SECRET_COLS} FROM secrets WHERE id=$1 AND deleted_at IS NULL"),
            &[&id.as_str()],
            secret_of,
        )
        .await
    }

    async fn list_secrets(&self) -> Result<Vec<SecretRecord>> {
        let c = self.client().await?;
        rows(&c, &format!("SELECT {SECRET_COLS} FROM secrets WHERE deleted_at IS NULL ORDER BY id"), &[], secret_of)
            .await
    }

    async fn delete_secret(&self, id: &SecretId) -> Result<bool> {
        let c = self.client().await?;
        Ok(exec(
            &c,
            "UPDATE secrets SET deleted_at=$2, ciphertext='', nonce='' WHERE id=$1 AND deleted_at IS NULL",
            &[&id.as_str(), &now_micros()],
        )
        .await?
            > 0)
    }

    async fn idempotency_begin(&self, scope: &str, key: &str, fp: &str) -> Result<IdemBegin> {
        let c = self.client().await?;
        let now = now_micros();
        exec(
            &c,
            "DELETE FROM idempotency WHERE scope=$1 AND key=$2 AND created_at < $3",
            &[&scope, &key, &(now - 48 * 3600 * 1_000_000)],
        )
        .await?;
        let fresh = exec(
            &c,
            "INSERT INTO idempotency (scope, key, fingerprint, created_at) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING",
            &[&scope, &key, &fp, &now],
        )
        .await?;
        if fresh == 1 {
            return Ok(IdemBegin::Fresh);
        }
        type Held = (String, Option<i64>, Option<Vec<u8>>);
        let row: Option<Held> = opt(
            &c,
            "SELECT fingerprint, status, body FROM idempotency WHERE scope=$1 AND key=$2",
            &[&scope, &key],
            |r| Ok(cols!(r; 0, 1, 2)),
        )
        .await?;
        Ok(match row {
            // Removed between the two statements (aborted): the caller may try again.
            None => IdemBegin::InProgress,
            Some((f, _, _)) if f != fp => IdemBegin::Mismatch,
            Some((_, Some(status), body)) => {
                IdemBegin::Replay { status: status as u16, body: body.unwrap_or_default() }
            }
            Some(_) => IdemBegin::InProgress,
        })
    }

    async fn idempotency_finish(&self, scope: &str, key: &str, status: u16, body: &[u8]) -> Result<()> {
        let c = self.client().await?;
        exec(
            &c,
            "UPDATE idempotency SET status=$3, body=$4 WHERE scope=$1 AND key=$2",
            &[&scope, &key, &i64::from(status), &body],
        )
        .await?;
        Ok(())
    }

    async fn idempotency_abort(&self, scope: &str, key: &str) -> Result<()> {
        let c = self.client().await?;
        exec(&c, "DELETE FROM idempotency WHERE scope=$1 AND key=$2 AND status IS NULL", &[&scope, &key]).await?;
        Ok(())
    }
}
