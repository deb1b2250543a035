//! One type for plain and TLS connections, so sessions need no generics.

use tokio::io::{AsyncRead, AsyncWrite};

/// Any duplex byte stream a session can run over.
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

pub type BoxStream = Box<dyn AsyncStream>;
