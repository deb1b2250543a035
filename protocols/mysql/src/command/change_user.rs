//! `COM_CHANGE_USER`, as connection pools send it to hand a connection to
//! its next borrower: the client authenticates again — with a Warden token
//! or access key, exactly as at connect — and the session's state is reset.
//! The new credential must be the same identity for the same target: a
//! session is recorded, judged and logged in upstream for one identity, so
//! becoming someone else takes a new connection.

use super::{CommandLoop, Flow};
use crate::errors::ClientError;
use crate::handshake::{ClientCredential, ClientHello, SCRAMBLE_LEN};
use mysql_common::constants::CapabilityFlags as Caps;
use warden_core::engines::AuthContext;
use warden_core::events::EventKind;

/// What a `COM_CHANGE_USER` carries.
#[derive(Debug, PartialEq, Eq)]
pub struct ChangeUser {
    pub user: String,
    pub auth: Vec<u8>,
    pub database: Option<String>,
    pub collation: Option<u16>,
    pub plugin: Option<String>,
}

/// Reads a `COM_CHANGE_USER` payload (after its command byte); `None` when
/// it is malformed. mysql_common writes this packet but has no reader.
pub fn parse(body: &[u8], caps: Caps) -> Option<ChangeUser> {
    let (user, rest) = cstr(body)?;
    // One length byte, or a length-encoded integer from clients that
    // negotiated it (mysql-connector sends long tokens so).
    let (len, used) = if caps.contains(Caps::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) {
        let (len, used) = crate::packets::read_lenenc(rest)?;
        (usize::try_from(len).ok()?, used)
    } else {
        (usize::from(*rest.first()?), 1)
    };
    let rest = rest.get(used..)?;
    let auth = rest.get(..len)?.to_vec();
    let (database, rest) = cstr(rest.get(len..)?)?;
    let mut out = ChangeUser {
        user,
        auth,
        database: Some(database).filter(|d| !d.is_empty()),
        collation: None,
        plugin: None,
    };
    if let Some(charset) = rest.first_chunk::<2>() {
        out.collation = Some(u16::from_le_bytes(*charset));
        if caps.contains(Caps::CLIENT_PLUGIN_AUTH)
            && let Some((plugin, _attributes)) = cstr(rest.get(2..)?)
        {
            out.plugin = Some(plugin).filter(|p| !p.is_empty());
        }
    }
    Some(out)
}

fn cstr(bytes: &[u8]) -> Option<(String, &[u8])> {
    let end = bytes.iter().position(|b| *b == 0)?;
    let text = String::from_utf8(bytes[..end].to_vec()).ok()?;
    Some((text, &bytes[end + 1..]))
}

impl CommandLoop<'_> {
    pub(super) async fn change_user(&mut self, payload: &[u8]) -> Flow {
        let Some(request) = payload.get(1..).and_then(|b| parse(b, self.caps)) else {
            self.send_error(&ClientError::Malformed("bad COM_CHANGE_USER".into()))
                .await;
            return Flow::End("malformed COM_CHANGE_USER".into());
        };
        let collation = request
            .collation
            .map_or(self.connection.collation, |c| c as u8);
        if let Some(charset) =
            warden_core::lexing::mysql_collation_refused_charset(collation.into())
        {
            let message = format!(
                "client character set {charset} is refused by Warden: connect with utf8mb4"
            );
            self.send_error(&ClientError::DatabaseDenied(message)).await;
            return Flow::End("COM_CHANGE_USER to a refused character set".into());
        }
        let credential = match request.plugin.as_deref() {
            Some("mysql_clear_password") => {
                ClientCredential::Cleartext(crate::handshake::cleartext(&request.auth))
            }
            Some("mysql_native_password") | None if request.auth.len() == SCRAMBLE_LEN => {
                ClientCredential::Native(request.auth.clone())
            }
            _ => ClientCredential::Other,
        };
        let mut hello = ClientHello {
            user: request.user.clone(),
            database: request.database.clone(),
            caps: self.caps,
            collation,
            tls: self.session.client_tls,
            scramble: self.connection.scramble,
            credential,
            next_seq: 1,
        };
        let target = hello.target_name().to_string();
        let context = AuthContext {
            client_addr: self.session.client_addr,
            protocol: warden_core::config::Protocol::Mysql,
            target: target.clone(),
        };
        let deadline = tokio::time::Instant::now() + self.gateway.config.server.handshake_timeout;
        let identity = crate::auth::authenticate(
            self.gateway,
            self.connection.native,
            &mut self.client,
            &mut hello,
            self.session.client_addr,
            deadline,
            &context,
        )
        .await;
        let same = match &identity {
            Ok(identity) => {
                warden_core::review_store::principal(identity)
                    == warden_core::review_store::principal(&self.session.identity)
                    && (target.is_empty()
                        || target == self.target.name
                        || target == self.target.upstream_database())
            }
            Err(_) => false,
        };
        if !same {
            let reason = match &identity {
                Ok(_) => "COM_CHANGE_USER to another identity or target: open a new connection",
                Err(_) => "COM_CHANGE_USER with a credential Warden does not accept",
            };
            tracing::info!(
                session = %self.session.id,
                reason,
                requested_target = %target,
                who = %identity.as_ref().map(|i| i.display_name()).unwrap_or_default(),
                "mysql change user refused"
            );
            self.client
                .queue_packet(hello.next_seq, &ClientError::AccessDenied.packet());
            let _ = self.client.flush().await;
            return Flow::End(reason.into());
        }
        // Same identity: reset the upstream session as a new borrower expects.
        self.reply_seq = hello.next_seq;
        let (flow, error) = self.single(&[super::com::RESET_CONNECTION]).await;
        if matches!(flow, Flow::Continue) && error.is_none() {
            if let Flow::End(reason) = self.after_reset().await {
                return Flow::End(reason);
            }
            self.policy_state = self
                .gateway
                .policy
                .new_session_state(warden_core::request::Dialect::Mysql);
            self.gateway
                .policy
                .set_session_server(self.policy_state.as_mut(), &self.upstream.server_version);
            self.gateway
                .policy
                .set_session_relations(self.policy_state.as_mut(), &self.connection.derived);
            self.gateway.policy.set_session_view_functions(
                self.policy_state.as_mut(),
                &self.connection.view_functions,
            );
            self.recording.record(EventKind::Decision {
                text: "COM_CHANGE_USER".into(),
                operation: warden_core::Operation::Read,
                action: warden_core::Action::Allow,
                rule: None,
                tables: Vec::new(),
                reason: "re-authenticated as the same identity; session state reset".into(),
            });
        }
        flow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_clients_send() {
        let mut body = b"wdn_0123456789abcdef\0".to_vec();
        body.push(20);
        body.extend_from_slice(&[7; 20]);
        body.extend_from_slice(b"orders\0");
        body.extend_from_slice(&45u16.to_le_bytes());
        body.extend_from_slice(b"mysql_native_password\0");
        let parsed = parse(&body, Caps::CLIENT_PLUGIN_AUTH).unwrap();
        assert_eq!(parsed.user, "wdn_0123456789abcdef");
        assert_eq!(parsed.auth, vec![7; 20]);
        assert_eq!(parsed.database.as_deref(), Some("orders"));
        assert_eq!(parsed.collation, Some(45));
        assert_eq!(parsed.plugin.as_deref(), Some("mysql_native_password"));
        assert_eq!(
            parse(b"u\0\0\0", Caps::empty()).map(|p| p.database),
            Some(None)
        );
        let mut long = b"agent\0\xfc\x2c\x01".to_vec();
        long.extend_from_slice(&[b't'; 300]);
        long.extend_from_slice(b"orders\0");
        let parsed = parse(&long, Caps::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA).unwrap();
        assert_eq!(
            (parsed.auth.len(), parsed.database.as_deref()),
            (300, Some("orders"))
        );
        for bad in [&b""[..], b"no-nul", b"u\0\x05ab", b"u\0\x00db-without-nul"] {
            assert_eq!(parse(bad, Caps::CLIENT_PLUGIN_AUTH), None, "{bad:?}");
        }
    }
}
