//! Threads, runs and the log as the interfaces read them: create and list threads, a
//! thread's detail (messages and what waits for a person), runs, pages of the log, and the
//! live bus for streams. Reads only; writes to the log go through [`crate::conditional`].

use crate::steering::{Pending, pending_requests};
use crate::{Engine, Error, Result};
use herm_store::{EventFilter, NewThread, RunRecord, ThreadQuery, ThreadRecord};
use herm_types::event::{LiveFrame, Role};
use herm_types::*;
use tokio::sync::broadcast;

/// A message of a thread, as the thread detail lists it.
#[derive(Clone, Debug)]
pub struct ThreadMessage {
    pub role: Role,
    pub content: String,
    pub run_id: Option<RunId>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A thread with its conversation and pending requests.
#[derive(Clone, Debug)]
pub struct ThreadDetail {
    pub thread: ThreadRecord,
    pub messages: Vec<ThreadMessage>,
    pub pending: Vec<Pending>,
}

impl Engine {
    /// Creates a thread of a live deployment.
    pub async fn create_thread(&self, dep: &DeploymentId, title: Option<String>) -> Result<ThreadRecord> {
        let id = ThreadId::new();
        self.store().create_thread(NewThread { id: id.clone(), deployment_id: dep.clone(), title }).await?;
        self.store().get_thread(&id).await?.ok_or(Error::NotFound("thread"))
    }

    /// A live thread by id, of any deployment.
    pub async fn thread(&self, id: &ThreadId) -> Result<ThreadRecord> {
        self.store().get_thread(id).await?.ok_or(Error::NotFound("thread"))
    }

    /// A live thread that belongs to `dep` (another deployment's is not found).
    pub async fn deployment_thread(&self, dep: &DeploymentId, id: &ThreadId) -> Result<ThreadRecord> {
        self.thread(id).await.ok().filter(|t| &t.deployment_id == dep).ok_or(Error::NotFound("thread"))
    }

    /// Threads of a deployment, newest first.
    pub async fn list_threads(&self, q: ThreadQuery) -> Result<Vec<ThreadRecord>> {
        Ok(self.store().list_threads(q).await?)
    }

    pub async fn rename_thread(&self, dep: &DeploymentId, id: &ThreadId, title: &str) -> Result<ThreadRecord> {
        self.deployment_thread(dep, id).await?;
        self.store().set_thread_title(id, title).await?;
        self.thread(id).await
    }

    /// Deletes a thread other than the deployment's default one; its runs stop.
    pub async fn delete_thread(&self, dep: &DeploymentId, id: &ThreadId) -> Result<()> {
        let d = self.deployment(dep).await?;
        let t = self.deployment_thread(dep, id).await?;
        if t.id == d.default_thread_id {
            return Err(Error::Conflict("the default thread of a deployment cannot be deleted".into()));
        }
        self.store().delete_thread(&t.id).await?;
        self.media_cache().forget(&t.deployment_id);
        self.cancel_worker(&t.id);
        self.inner.logs.forget_thread(&t.id);
        Ok(())
    }

    /// The thread with its messages and the requests waiting for a person.
    pub async fn thread_detail(&self, dep: &DeploymentId, id: &ThreadId) -> Result<ThreadDetail> {
        let thread = self.deployment_thread(dep, id).await?;
        let log = self.store().run_log(&thread.id).await?;
        let pending = pending_requests(&log);
        let messages = log
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Message { role, content, .. } => {
                    Some(ThreadMessage { role, content, run_id: e.run_id, created_at: e.created_at })
                }
                EventKind::AgentMessage { content } => {
                    Some(ThreadMessage { role: Role::Agent, content, run_id: e.run_id, created_at: e.created_at })
                }
                _ => None,
            })
            .collect();
        Ok(ThreadDetail { thread, messages, pending })
    }

    /// A run by id, of any deployment.
    pub async fn run_by_id(&self, id: &RunId) -> Result<RunRecord> {
        self.store().get_run(id).await?.ok_or(Error::NotFound("run"))
    }

    /// A run of the deployment.
    pub async fn run(&self, dep: &DeploymentId, id: &RunId) -> Result<RunRecord> {
        self.store().get_run(id).await?.filter(|r| &r.deployment_id == dep).ok_or(Error::NotFound("run"))
    }

    /// The whole log of a thread (for tools and benchmarks that fold it).
    pub async fn thread_log(&self, thread: &ThreadId) -> Result<Vec<Event>> {
        Ok(self.store().run_log(thread).await?)
    }

    /// Events of a thread after `sequence`, oldest first.
    pub async fn thread_events(&self, thread: &ThreadId, after: i64, limit: usize) -> Result<Vec<Event>> {
        Ok(self.store().thread_events(thread, after, limit).await?)
    }

    /// Events of a deployment after `deployment_sequence`, oldest first.
    pub async fn deployment_events(
        &self,
        dep: &DeploymentId,
        after: i64,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Event>> {
        Ok(self.store().deployment_events(dep, after, limit, filter).await?)
    }

    /// Live frames of a deployment: committed events in commit order, and ephemeral ones.
    pub fn subscribe(&self, dep: &DeploymentId) -> broadcast::Receiver<LiveFrame> {
        self.bus().subscribe(dep)
    }
}
