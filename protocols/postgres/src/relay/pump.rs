//! The two directions' loops: read into a buffer, scan it, write everything
//! ready in one call. Only the upstream direction writes to the client, so
//! responses (and Warden's own notices between them) keep their order.

use super::client_policy::{ClientPolicy, ClientStop};
use super::pending::Shared;
use super::scan::FrameScanner;
use super::upstream_inspect::UpstreamInspector;
use super::{IoFailure, ProtocolError, RelayContext, Stop};
use crate::client_error::PgClientError;
use crate::client_stream::{ReadHalfAny, WriteHalfAny};
use bytes::BytesMut;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Size of each direction's read buffer.
const READ_BUFFER: usize = 64 * 1024;

/// Grows `buf` when little room is left, enough for the frame being waited for.
fn make_room(buf: &mut BytesMut, needed: usize) {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(READ_BUFFER.max(needed.saturating_sub(buf.len())));
    }
}

/// Client → upstream. A statement held for review stops this direction
/// before its frame until the review ends.
pub(super) async fn client_to_upstream(
    context: &RelayContext,
    shared: &Shared,
    client: &mut ReadHalfAny,
    upstream: &mut WriteHalfAny,
    mut buf: BytesMut,
    from_client: &AtomicU64,
) -> Stop {
    let metrics = &context.gateway.metrics;
    let mut policy = ClientPolicy::new(context, shared);
    let mut scanner = FrameScanner::new(context.max_message);
    buf.reserve(READ_BUFFER);
    loop {
        if !buf.is_empty() || scanner.mid_frame() {
            let scanned = match scanner.scan(&mut buf, &mut policy) {
                Ok(scanned) => scanned,
                Err(error) => return Stop::Fatal(ProtocolError::Client(error)),
            };
            if let Some(out) = scanned.out
                && !out.is_empty()
                && let Err(error) = upstream.write_all(&out).await
            {
                return Stop::Io(IoFailure::WriteUpstream(error));
            }
            match scanned.stop {
                None => {}
                Some(ClientStop::Terminated) => return Stop::ClientTerminated,
                Some(ClientStop::Hold(request)) => {
                    let notices = |notice: BytesMut| shared.push_notice(notice);
                    match crate::hold::hold(
                        context,
                        &notices,
                        client,
                        &mut buf,
                        from_client,
                        request,
                    )
                    .await
                    {
                        Ok(release) => policy.release(release),
                        Err(crate::hold::HoldStop::ClientClosed) => return Stop::ClientClosed,
                    }
                    // Scan the held frame again, now with the review's outcome.
                    continue;
                }
            }
        }
        make_room(&mut buf, scanner.needed());
        match client.read_buf(&mut buf).await {
            Ok(0) => return Stop::ClientClosed,
            Ok(n) => {
                from_client.fetch_add(n as u64, Ordering::Relaxed);
                metrics
                    .bytes_from_clients
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(error) => return Stop::Io(IoFailure::ReadClient(error)),
        }
    }
}

/// Upstream → client. A frame that needs column names first stops this
/// direction until the catalog has them.
pub(super) async fn upstream_to_client(
    context: &RelayContext,
    shared: &Shared,
    upstream: &mut ReadHalfAny,
    client: &mut WriteHalfAny,
    to_client: &AtomicU64,
) -> Stop {
    let metrics = &context.gateway.metrics;
    let terminate = context.gateway.shutdown.terminate.clone();
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let mut inspector = UpstreamInspector::new(context, shared);
    // The upstream is trusted with frames of any length, as it always was.
    let mut scanner = FrameScanner::new(usize::MAX);
    loop {
        if !buf.is_empty() || scanner.mid_frame() {
            let scanned = match scanner.scan(&mut buf, &mut inspector) {
                Ok(scanned) => scanned,
                Err(error) => return Stop::Fatal(ProtocolError::Upstream(error)),
            };
            if let Some(out) = scanned.out {
                let n = out.len() as u64;
                if let Err(error) = client.write_all(&out).await {
                    return Stop::Io(IoFailure::WriteClient(error));
                }
                to_client.fetch_add(n, Ordering::Relaxed);
                metrics.bytes_to_clients.fetch_add(n, Ordering::Relaxed);
            }
            if let Some(need) = scanned.stop {
                inspector.load_catalog(need).await;
                continue;
            }
        }
        make_room(&mut buf, scanner.needed());
        let read = tokio::select! {
            biased;
            _ = terminate.cancelled() => {
                // Close at a message boundary with a clear error.
                if !scanner.mid_frame() {
                    let error = PgClientError::Terminating;
                    let _ = client.write_all(&error.encode()).await;
                }
                return Stop::Shutdown;
            }
            _ = context.session_end.ended() => {
                let reason = context.session_end.reason();
                if !scanner.mid_frame() {
                    let error = PgClientError::SessionEnded(reason.clone());
                    let _ = client.write_all(&error.encode()).await;
                }
                return Stop::Ended(reason);
            }
            _ = shared.notice_ready.notified(), if !scanner.mid_frame() => {
                let mut out = BytesMut::new();
                for notice in shared.take_notices() {
                    out.extend_from_slice(&notice);
                }
                if let Err(error) = client.write_all(&out).await {
                    return Stop::Io(IoFailure::WriteClient(error));
                }
                continue;
            }
            read = upstream.read_buf(&mut buf) => read,
        };
        match read {
            Ok(0) => return Stop::UpstreamClosed,
            Ok(_) => {}
            Err(error) => return Stop::Io(IoFailure::ReadUpstream(error)),
        }
    }
}
