//! The `/peerhours/sync/1` request-response codec: opaque bytes, bounded on read.
//!
//! A request (and a response) is every byte the writer sends before closing its half of the
//! stream; there is no framing inside. The node decides what the bytes mean (postcard). The
//! reader stops one byte past its bound, so an oversized message is an error, never a
//! silently truncated one.

use std::future::Future;
use std::io;
use std::pin::Pin;

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::StreamProtocol;

/// The protocol name: part of the wire contract.
pub const SYNC_PROTOCOL: &str = "/peerhours/sync/1";

/// Reads and writes raw byte messages with a size bound per direction.
#[derive(Debug, Clone, Copy)]
pub struct SyncCodec {
    /// Largest request accepted from a peer.
    pub request_bytes_max: usize,
    /// Largest response accepted from a peer.
    pub response_bytes_max: usize,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Reads everything up to `max` bytes; one byte more is an error.
async fn read_bounded<T>(io: &mut T, max: usize) -> io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin + Send,
{
    let limit = u64::try_from(max)
        .ok()
        .and_then(|m| m.checked_add(1))
        .ok_or_else(|| io::Error::other("size bound does not fit in u64"))?;
    let mut buf = Vec::new();
    io.take(limit).read_to_end(&mut buf).await?;
    if buf.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message exceeds {max} bytes"),
        ));
    }
    Ok(buf)
}

async fn write_bounded<T>(io: &mut T, data: &[u8], max: usize) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    if data.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("message of {} bytes exceeds {max}", data.len()),
        ));
    }
    io.write_all(data).await
}

// The trait is declared with `#[async_trait]`; these are its desugared signatures, written
// out so that the crate does not need the macro for four methods.
impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    fn read_request<'a, 'b, 'c, 'f, T>(
        &'a mut self,
        _protocol: &'b StreamProtocol,
        io: &'c mut T,
    ) -> BoxFuture<'f, io::Result<Vec<u8>>>
    where
        T: AsyncRead + Unpin + Send + 'f,
        'a: 'f,
        'b: 'f,
        'c: 'f,
        Self: 'f,
    {
        let max = self.request_bytes_max;
        Box::pin(async move { read_bounded(io, max).await })
    }

    fn read_response<'a, 'b, 'c, 'f, T>(
        &'a mut self,
        _protocol: &'b StreamProtocol,
        io: &'c mut T,
    ) -> BoxFuture<'f, io::Result<Vec<u8>>>
    where
        T: AsyncRead + Unpin + Send + 'f,
        'a: 'f,
        'b: 'f,
        'c: 'f,
        Self: 'f,
    {
        let max = self.response_bytes_max;
        Box::pin(async move { read_bounded(io, max).await })
    }

    fn write_request<'a, 'b, 'c, 'f, T>(
        &'a mut self,
        _protocol: &'b StreamProtocol,
        io: &'c mut T,
        req: Vec<u8>,
    ) -> BoxFuture<'f, io::Result<()>>
    where
        T: AsyncWrite + Unpin + Send + 'f,
        'a: 'f,
        'b: 'f,
        'c: 'f,
        Self: 'f,
    {
        let max = self.request_bytes_max;
        Box::pin(async move { write_bounded(io, &req, max).await })
    }

    fn write_response<'a, 'b, 'c, 'f, T>(
        &'a mut self,
        _protocol: &'b StreamProtocol,
        io: &'c mut T,
        res: Vec<u8>,
    ) -> BoxFuture<'f, io::Result<()>>
    where
        T: AsyncWrite + Unpin + Send + 'f,
        'a: 'f,
        'b: 'f,
        'c: 'f,
        Self: 'f,
    {
        let max = self.response_bytes_max;
        Box::pin(async move { write_bounded(io, &res, max).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;

    #[test]
    fn reads_up_to_the_bound_and_rejects_one_byte_more() {
        let at_bound = vec![7u8; 10];
        let got = block_on(read_bounded(&mut Cursor::new(at_bound.clone()), 10)).expect("fits");
        assert_eq!(got, at_bound);
        let over = vec![7u8; 11];
        let err = block_on(read_bounded(&mut Cursor::new(over), 10)).expect_err("too big");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let empty = block_on(read_bounded(&mut Cursor::new(Vec::new()), 10)).expect("empty");
        assert!(empty.is_empty());
    }

    #[test]
    fn refuses_to_write_oversized_messages() {
        let mut sink = Cursor::new(Vec::new());
        let err = block_on(write_bounded(&mut sink, &[1, 2, 3], 2)).expect_err("too big");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        block_on(write_bounded(&mut sink, &[1, 2], 2)).expect("fits");
        assert_eq!(sink.into_inner(), vec![1, 2]);
    }
}
