//! The untagged packets a client sends first: SSLRequest, GSSENCRequest,
//! CancelRequest and StartupMessage. Read exactly, never past the packet,
//! so nothing sent in clear can be mistaken for TLS data (CVE-2021-23214).

use tokio::io::{AsyncRead, AsyncReadExt};

/// PostgreSQL's own limit for packets before authentication (pqcomm.h).
pub const MAX_STARTUP_PACKET: usize = 10_000;

const SSL_REQUEST: i32 = 80877103;
const GSSENC_REQUEST: i32 = 80877104;
const CANCEL_REQUEST: i32 = 80877102;

/// Newest protocol minor version Warden speaks to clients (3.2: long cancel keys).
pub const NEWEST_MINOR: u16 = 2;

#[derive(Debug, PartialEq, Eq)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel { process_id: i32, secret: Vec<u8> },
    Startup(StartupMessage),
}

#[derive(Debug, PartialEq, Eq)]
pub struct StartupMessage {
    pub major: u16,
    pub minor: u16,
    /// In the order the client sent them.
    pub parameters: Vec<(String, String)>,
}

impl StartupMessage {
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("connection closed before the startup packet")]
    Closed,
    #[error("i/o error reading the startup packet: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid startup packet length {0}")]
    BadLength(i32),
    #[error(
        "unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.{NEWEST_MINOR}"
    )]
    UnsupportedVersion { major: u16, minor: u16 },
    #[error("invalid startup packet layout: {0}")]
    Malformed(&'static str),
    #[error("startup parameters must be valid UTF-8")]
    NotUtf8,
}

/// Reads one untagged startup-phase packet.
pub async fn read_startup_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<StartupPacket, StartupError> {
    let mut len_bytes = [0u8; 4];
    match reader.read_exact(&mut len_bytes).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(StartupError::Closed);
        }
        Err(e) => return Err(e.into()),
    }
    let len = i32::from_be_bytes(len_bytes);
    if len < 8 || len as usize > MAX_STARTUP_PACKET {
        return Err(StartupError::BadLength(len));
    }
    let mut body = vec![0u8; len as usize - 4];
    reader.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            StartupError::Closed
        } else {
            StartupError::Io(e)
        }
    })?;
    parse_startup_body(&body)
}

/// Parses the body (everything after the length) of a startup-phase packet.
pub fn parse_startup_body(body: &[u8]) -> Result<StartupPacket, StartupError> {
    let code = i32::from_be_bytes(
        body.get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(StartupError::Malformed("too short"))?,
    );
    let rest = &body[4..];
    match code {
        SSL_REQUEST | GSSENC_REQUEST => {
            if !rest.is_empty() {
                return Err(StartupError::Malformed("SSL/GSS request with a body"));
            }
            Ok(if code == SSL_REQUEST {
                StartupPacket::SslRequest
            } else {
                StartupPacket::GssEncRequest
            })
        }
        CANCEL_REQUEST => {
            if rest.len() < 8 || rest.len() > 4 + 256 {
                return Err(StartupError::Malformed("cancel request length"));
            }
            let process_id = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
            Ok(StartupPacket::Cancel {
                process_id,
                secret: rest[4..].to_vec(),
            })
        }
        version => {
            let major = (version >> 16) as u16;
            let minor = (version & 0xffff) as u16;
            if major != 3 {
                return Err(StartupError::UnsupportedVersion { major, minor });
            }
            Ok(StartupPacket::Startup(StartupMessage {
                major,
                minor,
                parameters: parse_parameters(rest)?,
            }))
        }
    }
}

fn parse_parameters(mut rest: &[u8]) -> Result<Vec<(String, String)>, StartupError> {
    let mut parameters = Vec::new();
    loop {
        let key_end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(StartupError::Malformed("unterminated parameter name"))?;
        if key_end == 0 {
            if rest.len() != 1 {
                return Err(StartupError::Malformed("bytes after the parameter list"));
            }
            return Ok(parameters);
        }
        let key = std::str::from_utf8(&rest[..key_end]).map_err(|_| StartupError::NotUtf8)?;
        rest = &rest[key_end + 1..];
        let value_end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(StartupError::Malformed("unterminated parameter value"))?;
        let value = std::str::from_utf8(&rest[..value_end]).map_err(|_| StartupError::NotUtf8)?;
        rest = &rest[value_end + 1..];
        if parameters.iter().any(|(k, _)| k == key) {
            return Err(StartupError::Malformed("duplicate parameter"));
        }
        parameters.push((key.to_string(), value.to_string()));
    }
}

/// Settings a client may not set at startup through Warden: they change who
/// the session acts as or weaken the read-only wall policy relies on.
const REFUSED_PARAMETERS: &[&str] = &[
    "role",
    "session_authorization",
    "default_transaction_read_only",
    "transaction_read_only",
    "session_replication_role",
    "local_preload_libraries",
    "session_preload_libraries",
];

/// A startup parameter Warden will not forward. Displays as the client's
/// FATAL names it (`replication`, `role=postgres`, `options (-e)`), so the
/// refusal text stays what clients have always seen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefusedParameter {
    /// `replication`, as the client spelled the key.
    #[error("{key}")]
    Replication { key: String },
    /// A parameter that would change who the session acts as, weaken the
    /// read-only wall or change how statements lex.
    #[error("{key}={value}")]
    Setting { key: String, value: String },
    /// A switch in `options` other than `-c`/`--name=value`.
    #[error("options ({word})")]
    OptionsSwitch { word: String },
    /// A `-c`/`--` setting in `options` that is malformed or refused by name.
    #[error("options ({name})")]
    OptionsName { name: String },
    /// A `-c`/`--` setting in `options` refused for its value.
    #[error("options ({name}={value})")]
    OptionsValue { name: String, value: String },
}

/// Compares the displayed name, which is what the session's refusal checks
/// (`name == "replication"`): only [`RefusedParameter::Replication`] spelled
/// in lowercase matches, as when this was a plain string.
impl PartialEq<&str> for RefusedParameter {
    fn eq(&self, other: &&str) -> bool {
        let is_pair = |text: &str, name: &str, value: &str| {
            text.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                == Some(value)
        };
        let options = other
            .strip_prefix("options (")
            .and_then(|rest| rest.strip_suffix(')'));
        match self {
            RefusedParameter::Replication { key } => key == other,
            RefusedParameter::Setting { key, value } => is_pair(other, key, value),
            RefusedParameter::OptionsSwitch { word: name }
            | RefusedParameter::OptionsName { name } => options == Some(name.as_str()),
            RefusedParameter::OptionsValue { name, value } => {
                options.is_some_and(|inner| is_pair(inner, name, value))
            }
        }
    }
}

/// Checks the client's startup parameters. Returns those to forward upstream
/// (everything but `user`, `database` and protocol options), or the refused one.
pub fn forwardable_parameters(
    message: &StartupMessage,
) -> Result<Vec<(String, String)>, RefusedParameter> {
    let mut forwarded = Vec::new();
    for (key, value) in &message.parameters {
        let lower = key.to_ascii_lowercase();
        match lower.as_str() {
            "user" | "database" => continue,
            "replication" => return Err(RefusedParameter::Replication { key: key.clone() }),
            "options" => {
                check_options(value)?;
                forwarded.push((key.clone(), value.clone()));
                continue;
            }
            _ => {}
        }
        if lower.starts_with("_pq_.") {
            continue;
        }
        if REFUSED_PARAMETERS.contains(&lower.as_str())
            || warden_core::lexing::pg_setting_refusal(&lower, value).is_some()
        {
            return Err(RefusedParameter::Setting {
                key: key.clone(),
                value: value.clone(),
            });
        }
        forwarded.push((key.clone(), value.clone()));
    }
    Ok(forwarded)
}

/// `options` carries `-c name=value` / `--name=value` settings: split and
/// read exactly as the server does (`pg_split_opts`, then getopt and
/// `ParseLongOption`), then apply the same refusals as to startup
/// parameters. Every other switch is refused.
fn check_options(options: &str) -> Result<(), RefusedParameter> {
    let words = split_options(options);
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let setting = if word == "-c" {
            words.next().map(String::as_str).unwrap_or("")
        } else if let Some(setting) = word.strip_prefix("--") {
            setting
        } else if let Some(setting) = word.strip_prefix("-c") {
            setting
        } else {
            return Err(RefusedParameter::OptionsSwitch { word: word.clone() });
        };
        let (name, value) = setting.split_once('=').unwrap_or((setting, ""));
        let name = name.to_ascii_lowercase().replace('-', "_");
        let plain = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if name.is_empty() || !plain || REFUSED_PARAMETERS.contains(&name.as_str()) {
            return Err(RefusedParameter::OptionsName { name });
        }
        if warden_core::lexing::pg_setting_refusal(&name, value).is_some() {
            return Err(RefusedParameter::OptionsValue {
                name,
                value: value.to_string(),
            });
        }
    }
    Ok(())
}

/// The server's `pg_split_opts`: words separated by whitespace, where a
/// backslash makes the next character literal (and is itself dropped).
fn split_options(options: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = options.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return words;
        }
        let mut word = String::new();
        let mut escaped = false;
        while let Some(&c) = chars.peek() {
            if c.is_ascii_whitespace() && !escaped {
                break;
            }
            chars.next();
            if !escaped && c == '\\' {
                escaped = true;
            } else {
                escaped = false;
                word.push(c);
            }
        }
        words.push(word);
    }
}

/// Protocol options (`_pq_.*`) the client asked for; Warden supports none.
pub fn protocol_options(message: &StartupMessage) -> Vec<String> {
    message
        .parameters
        .iter()
        .filter(|(k, _)| k.starts_with("_pq_."))
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup_body(version: i32, params: &[(&str, &str)]) -> Vec<u8> {
        let mut body = version.to_be_bytes().to_vec();
        for (k, v) in params {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        body
    }

    #[test]
    fn parses_startup_and_requests() {
        let body = startup_body(196608, &[("user", "a"), ("database", "orders")]);
        let StartupPacket::Startup(message) = parse_startup_body(&body).unwrap() else {
            panic!("not a startup message");
        };
        assert_eq!(message.parameter("database"), Some("orders"));
        assert_eq!(
            parse_startup_body(&80877103i32.to_be_bytes()).unwrap(),
            StartupPacket::SslRequest
        );
        let mut cancel = 80877102i32.to_be_bytes().to_vec();
        cancel.extend_from_slice(&[0, 0, 0, 7, 1, 2, 3, 4]);
        assert_eq!(
            parse_startup_body(&cancel).unwrap(),
            StartupPacket::Cancel {
                process_id: 7,
                secret: vec![1, 2, 3, 4]
            }
        );
    }

    #[test]
    fn refuses_bad_packets() {
        assert!(matches!(
            parse_startup_body(&startup_body(0x0004_0000, &[])),
            Err(StartupError::UnsupportedVersion { major: 4, .. })
        ));
        let mut bad_utf8 = 196608i32.to_be_bytes().to_vec();
        bad_utf8.extend_from_slice(b"user\0\xff\xfe\0\0");
        assert!(matches!(
            parse_startup_body(&bad_utf8),
            Err(StartupError::NotUtf8)
        ));
        let mut unterminated = 196608i32.to_be_bytes().to_vec();
        unterminated.extend_from_slice(b"user\0abc");
        assert!(parse_startup_body(&unterminated).is_err());
        assert!(parse_startup_body(b"\0\0").is_err());
    }

    #[test]
    fn filters_parameters() {
        let message = StartupMessage {
            major: 3,
            minor: 0,
            parameters: vec![
                ("user".into(), "x".into()),
                ("application_name".into(), "psql".into()),
                ("options".into(), "-c search_path=s1".into()),
            ],
        };
        let forwarded = forwardable_parameters(&message).unwrap();
        assert_eq!(forwarded.len(), 2);
        let hostile = StartupMessage {
            major: 3,
            minor: 0,
            parameters: vec![("options".into(), "-c role=postgres".into())],
        };
        assert_eq!(
            forwardable_parameters(&hostile).unwrap_err().to_string(),
            "options (role)"
        );
        let hostile = StartupMessage {
            major: 3,
            minor: 0,
            parameters: vec![(
                "options".into(),
                "--default-transaction-read-only=off".into(),
            )],
        };
        assert!(forwardable_parameters(&hostile).is_err());
        let replication = StartupMessage {
            major: 3,
            minor: 0,
            parameters: vec![("replication".into(), "database".into())],
        };
        assert_eq!(
            forwardable_parameters(&replication).unwrap_err(),
            "replication"
        );
        let shouting = StartupMessage {
            major: 3,
            minor: 0,
            parameters: vec![("REPLICATION".into(), "true".into())],
        };
        let refused = forwardable_parameters(&shouting).unwrap_err();
        assert!(matches!(refused, RefusedParameter::Replication { .. }));
        assert_ne!(refused, "replication");
        for refused in [
            RefusedParameter::Setting {
                key: "role".into(),
                value: "x".into(),
            },
            RefusedParameter::OptionsSwitch { word: "-e".into() },
            RefusedParameter::OptionsValue {
                name: "client_encoding".into(),
                value: "SJIS".into(),
            },
        ] {
            let text = refused.to_string();
            assert_eq!(refused, text.as_str());
            assert_ne!(refused, "replication");
        }
    }

    fn options_message(options: &str) -> StartupMessage {
        StartupMessage {
            major: 3,
            minor: 0,
            parameters: vec![("options".into(), options.into())],
        }
    }

    #[test]
    fn options_are_split_as_the_server_splits_them() {
        assert_eq!(
            split_options(r"  -c a=b\ c  --x\y=1 "),
            vec!["-c", "a=b c", "--xy=1"]
        );
        assert_eq!(split_options(r"-c a=\\"), vec!["-c", r"a=\"]);
        // The backslash disappears, so the server reads session_replication_role.
        for hostile in [
            r"--session_replication_rol\e=replica",
            r"-c\ role=postgres",
            r"-c r\ole=postgres",
            "--standard-conforming-strings=off",
            "-c client_encoding=SJIS",
            "-e",
            "-c",
            "--",
            "-B 100",
        ] {
            assert!(
                forwardable_parameters(&options_message(hostile)).is_err(),
                "{hostile}"
            );
        }
        for fine in [
            "-c search_path=s1",
            "--statement-timeout=5s",
            "-cwork_mem=4MB",
        ] {
            assert!(
                forwardable_parameters(&options_message(fine)).is_ok(),
                "{fine}"
            );
        }
    }

    #[test]
    fn lexing_parameters_are_refused_at_startup() {
        for (name, value) in [
            ("standard_conforming_strings", "off"),
            ("client_encoding", "BIG5"),
            ("CLIENT_ENCODING", "gbk"),
        ] {
            let message = StartupMessage {
                major: 3,
                minor: 0,
                parameters: vec![(name.into(), value.into())],
            };
            assert!(forwardable_parameters(&message).is_err(), "{name}={value}");
        }
        let utf8 = StartupMessage {
            major: 3,
            minor: 0,
            parameters: vec![("client_encoding".into(), "UTF8".into())],
        };
        assert!(forwardable_parameters(&utf8).is_ok());
    }
}
