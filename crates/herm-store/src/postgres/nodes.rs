//! What nodes sharing one database must agree on: distinct node ids (a second live process
//! with a node's id is refused; the node itself, restarted after a crash, takes its id back at
//! once) and one master key (a node whose key cannot open the vault's check value refuses to
//! start, so it never writes secrets the others cannot read).

use super::{DB_NOW_MS, PostgresStore, exec, opt};
use crate::vault::Vault;
use crate::{Error, Result};
use herm_types::SecretId;
use std::time::Duration;

/// What the vault's check value says once opened.
const CHECK: &str = "herm master key check";

fn check_id() -> Result<SecretId> {
    SecretId::parse("sec_0000000000000000000000").map_err(|e| Error::Corrupt(e.to_string()))
}

impl PostgresStore {
    /// Takes `node_id` for this process. `incarnation` is the node's own lasting identity (kept
    /// in its data directory): the same node restarting takes its id back at once; another
    /// process is refused while the holder's heartbeat is younger than `stale_after`. A task
    /// then beats every third of `stale_after` for as long as the store lives.
    pub async fn claim_node(&self, node_id: &str, incarnation: &str, stale_after: Duration) -> Result<()> {
        let stale_ms = stale_after.as_millis().min(i64::MAX as u128) as i64;
        let c = self.client().await?;
        let took = exec(
            &c,
            &format!(
                "INSERT INTO nodes (node_id, incarnation, heartbeat_at, started_at) VALUES ($1, $2, {DB_NOW_MS}, {DB_NOW_MS})
                 ON CONFLICT (node_id) DO UPDATE SET incarnation=excluded.incarnation,
                   heartbeat_at=excluded.heartbeat_at, started_at=excluded.started_at
                 WHERE nodes.incarnation=excluded.incarnation OR nodes.heartbeat_at < {DB_NOW_MS} - $3"
            ),
            &[&node_id, &incarnation, &stale_ms],
        )
        .await?;
        if took == 0 {
            let age: Option<i64> =
                opt(&c, &format!("SELECT {DB_NOW_MS} - heartbeat_at FROM nodes WHERE node_id=$1"), &[&node_id], |r| {
                    Ok(r.try_get(0)?)
                })
                .await?;
            return Err(Error::Conflict(format!(
                "node id `{node_id}` belongs to another live node (its last heartbeat {} ms ago); give each node its own engine.node_id",
                age.unwrap_or_default()
            )));
        }
        drop(c);
        let weak = std::sync::Arc::downgrade(&self.inner);
        let (node_id, incarnation) = (node_id.to_owned(), incarnation.to_owned());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(stale_after / 3);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let store = PostgresStore { inner };
                let beat = async {
                    let c = store.client().await?;
                    exec(
                        &c,
                        &format!("UPDATE nodes SET heartbeat_at={DB_NOW_MS} WHERE node_id=$1 AND incarnation=$2"),
                        &[&node_id, &incarnation],
                    )
                    .await
                };
                match beat.await {
                    Ok(0) => tracing::error!(node = %node_id, "another process took this node's id"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "node heartbeat failed"),
                }
            }
        });
        Ok(())
    }

    /// Checks that `vault` opens the database's check value (written by the first node).
    /// [`Error::Crypto`] when it does not: this node holds another master key.
    pub async fn check_master_key(&self, vault: &Vault) -> Result<()> {
        let id = check_id()?;
        let (nonce, ct) = vault.seal(&id, CHECK)?;
        let c = self.client().await?;
        exec(
            &c,
            "INSERT INTO vault_check (id, nonce, ciphertext) VALUES (1, $1, $2) ON CONFLICT DO NOTHING",
            &[&nonce, &ct],
        )
        .await?;
        let (nonce, ct): (Vec<u8>, Vec<u8>) =
            opt(&c, "SELECT nonce, ciphertext FROM vault_check WHERE id=1", &[], |r| {
                Ok((r.try_get(0)?, r.try_get(1)?))
            })
            .await?
            .ok_or(Error::NotFound)?;
        match vault.open(&id, &nonce, &ct) {
            Ok(v) if v.expose() == CHECK => Ok(()),
            _ => Err(Error::Crypto),
        }
    }
}
