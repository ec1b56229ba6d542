//! The request-response codec: MessagePack messages in length-prefixed frames.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of MessagePack. A
//! frame longer than the codec's cap is refused before anything is allocated for it, so a
//! peer cannot make a node buffer more than [`meshml_protocol::MAX_FRAME`] per stream.

use std::io;

use futures::prelude::*;
use libp2p::StreamProtocol;
use meshml_protocol::{decode, encode, Request, Response, MAX_FRAME};

/// The request-response protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/meshml/rr/1");

/// MessagePack codec with a frame cap.
#[derive(Debug, Clone, Copy)]
pub struct MsgpackCodec {
    max_frame: usize,
}

impl Default for MsgpackCodec {
    /// Frames up to [`MAX_FRAME`] (4 MiB).
    fn default() -> Self {
        Self {
            max_frame: MAX_FRAME,
        }
    }
}

impl MsgpackCodec {
    /// A codec refusing frames above `max_frame` bytes.
    pub fn with_max_frame(max_frame: usize) -> Self {
        Self { max_frame }
    }
}

/// Reads one frame.
pub async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {max}-byte limit"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Writes one frame.
pub async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.flush().await
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl libp2p::request_response::Codec for MsgpackCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = read_frame(io, self.max_frame).await?;
        decode(&frame, self.max_frame).map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = read_frame(io, self.max_frame).await?;
        decode(&frame, self.max_frame).map_err(invalid)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = encode(&req, self.max_frame).map_err(invalid)?;
        write_frame(io, &bytes).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = encode(&res, self.max_frame).map_err(invalid)?;
        write_frame(io, &bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::request_response::Codec;
    use meshml_protocol::{Heartbeat, NodeId, Piece};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn requests_and_responses_round_trip_through_frames() {
        let mut c = MsgpackCodec::default();
        let req = Request::Heartbeat(Heartbeat {
            node: NodeId::new("a"),
            seq: 3,
            running_tasks: 1,
        });
        let mut buf = Vec::new();
        block_on(c.write_request(&PROTOCOL, &mut buf, req.clone())).unwrap();
        assert_eq!(
            u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize,
            buf.len() - 4
        );
        let back = block_on(c.read_request(&PROTOCOL, &mut futures::io::Cursor::new(buf))).unwrap();
        assert_eq!(back, req);

        let res = Response::Piece(Piece {
            offset: 0,
            total_len: 3,
            bytes: vec![1, 2, 3],
        });
        let mut buf = Vec::new();
        block_on(c.write_response(&PROTOCOL, &mut buf, res.clone())).unwrap();
        let back =
            block_on(c.read_response(&PROTOCOL, &mut futures::io::Cursor::new(buf))).unwrap();
        assert_eq!(back, res);
    }

    #[test]
    fn oversized_and_malformed_frames_are_refused() {
        let mut c = MsgpackCodec::with_max_frame(1024);
        // A frame announcing 1 GiB: refused from the header alone.
        let mut huge = (1u32 << 30).to_be_bytes().to_vec();
        huge.extend_from_slice(&[0; 16]);
        let e =
            block_on(c.read_request(&PROTOCOL, &mut futures::io::Cursor::new(huge))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("exceeds the 1024-byte limit"), "{e}");
        // Garbage of the announced length.
        let mut junk = 5u32.to_be_bytes().to_vec();
        junk.extend_from_slice(&[0xc1, 0xc1, 0xc1, 0xc1, 0xc1]);
        let e =
            block_on(c.read_request(&PROTOCOL, &mut futures::io::Cursor::new(junk))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        // A truncated frame.
        let mut short = 10u32.to_be_bytes().to_vec();
        short.extend_from_slice(&[1, 2]);
        assert!(block_on(c.read_request(&PROTOCOL, &mut futures::io::Cursor::new(short))).is_err());
        // Writing more than the cap is refused too.
        let big = Request::SubmitJob {
            spec: vec![0; 2048],
        };
        assert!(block_on(c.write_request(&PROTOCOL, &mut Vec::new(), big)).is_err());
    }
}
