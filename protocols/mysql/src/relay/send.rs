//! What may go upstream: statements only with policy's grant, everything
//! else only when it carries no SQL.

use super::{Relay, RelayError};
use crate::threads::Kill;
use warden_core::grant::{PrepareGrant, StatementGrant};

/// Commands that carry SQL: only [`Relay::send_statement`] and
/// [`Relay::send_prepare`] forward them, each taking policy's grant.
const STATEMENT_COMMANDS: [u8; 4] = [0x03, 0x04, 0x16, 0x17];

impl Relay<'_> {
    /// Forwards a statement (COM_QUERY, COM_STMT_EXECUTE, COM_FIELD_LIST,
    /// COM_INIT_DB of a foreign database) that policy, or a reviewer, allowed.
    pub async fn send_statement(
        &mut self,
        grant: StatementGrant,
        payload: &[u8],
    ) -> Result<(), RelayError> {
        grant.spend();
        self.send(payload).await
    }

    /// Forwards COM_STMT_PREPARE of a statement policy did not deny.
    pub async fn send_prepare(
        &mut self,
        grant: PrepareGrant,
        payload: &[u8],
    ) -> Result<(), RelayError> {
        grant.spend();
        self.send(payload).await
    }

    /// Forwards `KILL [QUERY] <thread>` of the caller's own session: the
    /// text is built here from the parsed KILL, so nothing else can pass.
    pub async fn send_own_kill(&mut self, kill: &Kill, thread: u32) -> Result<(), RelayError> {
        let mut payload = vec![0x03];
        payload.extend_from_slice(kill.upstream_sql(thread).as_bytes());
        self.send(&payload).await
    }

    /// Forwards a command that carries no SQL (ping, statement close or
    /// reset, fetch, …). One that does is refused, never forwarded.
    pub async fn send_command(&mut self, payload: &[u8]) -> Result<(), RelayError> {
        if payload
            .first()
            .is_none_or(|command| STATEMENT_COMMANDS.contains(command))
        {
            return Err(RelayError::Ungranted);
        }
        self.send(payload).await
    }

    /// Sends one command upstream, starting at sequence 0.
    pub(super) async fn send(&mut self, payload: &[u8]) -> Result<(), RelayError> {
        self.upstream.queue_packet(0, payload);
        self.upstream.flush().await.map_err(RelayError::Upstream)
    }
}
