//! The async face of the TPM: one owner thread holds the [`Tpm`]; callers hold a cheap
//! [`TpmHandle`] and send it work through a bounded queue.
//!
//! A TPM serves one command at a time and swtpm one client at a time, and TSS contexts are not
//! `Sync`, so serialising through one thread is both required and free. Every call is bounded by
//! the configured timeout: a TPM (or socket) that stops answering yields
//! [`TpmError::Unreachable`], never a hung caller; a full queue yields [`TpmError::Busy`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::config::TpmConfig;
use crate::error::TpmError;
use crate::seal::{SealedBlob, Secret};
use crate::tpm::{AkPublic, EkCertificate, Quote, Tpm, TpmInfo};
use hearth_eventlog::pcr::{PcrSelection, PcrValues};

type Job = Box<dyn FnOnce(&mut Tpm) + Send>;

/// A cheap, cloneable handle to the TPM owner thread.
#[derive(Clone, Debug)]
pub struct TpmHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None` only while dropping.
    tx: Option<mpsc::Sender<Job>>,
    /// Disconnects when the owner thread has dropped its [`Tpm`].
    done: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    owner: std::thread::ThreadId,
    timeout: Duration,
    queue_depth: usize,
    info: TpmInfo,
}

impl Drop for Inner {
    /// Waits (up to the timeout) for the owner thread to flush and close the TPM context.
    ///
    /// Without this, a process whose `main` returns right after its last TPM call exits while
    /// the owner thread is still inside the TSS (which uses OpenSSL): `exit` runs OpenSSL's
    /// atexit clean-up concurrently and the process dies with "double free or corruption".
    fn drop(&mut self) {
        drop(self.tx.take());
        if std::thread::current().id() != self.owner
            && let Ok(done) = self.done.get_mut()
        {
            let _ = done.recv_timeout(self.timeout);
        }
    }
}

impl TpmHandle {
    /// Starts the owner thread and opens the TPM on it, within `config.timeout`.
    pub async fn open(config: TpmConfig) -> Result<TpmHandle, TpmError> {
        let timeout = config.timeout;
        let tcti = config.transport.to_string();
        let queue_depth = config.queue_depth.max(1);
        let (tx, rx) = mpsc::channel::<Job>(queue_depth);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (done_tx, done) = std::sync::mpsc::channel::<()>();
        let owner = std::thread::Builder::new()
            .name("tpm-owner".into())
            .spawn(move || {
                owner(config, rx, ready_tx);
                drop(done_tx);
            })
            .map_err(|_| TpmError::Unavailable)?
            .thread()
            .id();
        let info = match tokio::time::timeout(timeout, ready_rx).await {
            Ok(Ok(opened)) => opened?,
            Ok(Err(_)) => return Err(TpmError::Unavailable),
            Err(_) => return Err(TpmError::timeout(&tcti, timeout)),
        };
        Ok(TpmHandle {
            inner: Arc::new(Inner {
                tx: Some(tx),
                done: std::sync::Mutex::new(done),
                owner,
                timeout,
                queue_depth,
                info,
            }),
        })
    }

    pub fn info(&self) -> &TpmInfo {
        &self.inner.info
    }

    /// Runs `f` on the owner thread. Fails with `Busy` when the queue is full and with
    /// `Unreachable` when no answer comes within the timeout (the job may still run later).
    pub async fn call<R, F>(&self, f: F) -> Result<R, TpmError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tpm) -> Result<R, TpmError> + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job: Job = Box::new(move |tpm| {
            // A caller that timed out has been told the TPM is unreachable: doing its work now
            // (incrementing a counter, say) would act on a request it believes failed.
            if reply_tx.is_closed() {
                return;
            }
            let _ = reply_tx.send(f(tpm));
        });
        let tx = self.inner.tx.as_ref().ok_or(TpmError::Unavailable)?;
        tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => TpmError::Busy {
                queued: self.inner.queue_depth,
            },
            mpsc::error::TrySendError::Closed(_) => TpmError::Unavailable,
        })?;
        match tokio::time::timeout(self.inner.timeout, reply_rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(TpmError::Unavailable),
            Err(_) => Err(TpmError::timeout(
                &self.inner.info.transport,
                self.inner.timeout,
            )),
        }
    }

    pub async fn pcr_read(&self, selection: PcrSelection) -> Result<PcrValues, TpmError> {
        self.call(move |tpm| tpm.pcr_read(&selection)).await
    }

    pub async fn pcr_extend(&self, pcr: u8, data: Vec<u8>) -> Result<(), TpmError> {
        self.call(move |tpm| tpm.pcr_extend(pcr, &data)).await
    }

    /// Seals `secret` to the current values of `selection`. The secret travels to the owner
    /// thread in a zeroizing buffer.
    pub async fn seal(
        &self,
        secret: Secret,
        selection: PcrSelection,
    ) -> Result<SealedBlob, TpmError> {
        self.call(move |tpm| tpm.seal(secret.expose(), &selection))
            .await
    }

    pub async fn unseal(&self, blob: SealedBlob) -> Result<Secret, TpmError> {
        self.call(move |tpm| tpm.unseal(&blob)).await
    }

    pub async fn ak_public(&self) -> Result<AkPublic, TpmError> {
        self.call(Tpm::ak_public).await
    }

    pub async fn quote(&self, nonce: Vec<u8>, selection: PcrSelection) -> Result<Quote, TpmError> {
        self.call(move |tpm| tpm.quote(&nonce, &selection)).await
    }

    pub async fn counter_read(&self, index: u32) -> Result<u64, TpmError> {
        self.call(move |tpm| tpm.counter_read(index)).await
    }

    pub async fn counter_increment(&self, index: u32) -> Result<u64, TpmError> {
        self.call(move |tpm| tpm.counter_increment(index)).await
    }

    pub async fn ek_certificates(&self) -> Result<Vec<EkCertificate>, TpmError> {
        self.call(Tpm::ek_certificates).await
    }
}

fn owner(
    config: TpmConfig,
    mut rx: mpsc::Receiver<Job>,
    ready: oneshot::Sender<Result<TpmInfo, TpmError>>,
) {
    let mut tpm = match Tpm::open(&config) {
        Ok(tpm) => tpm,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(tpm.info().clone())).is_err() {
        return; // The opener gave up (timeout); nobody will send work.
    }
    // Ends when every handle is dropped; dropping the Tpm flushes what it holds.
    while let Some(job) = rx.blocking_recv() {
        job(&mut tpm);
    }
}
