//! The WebSocket wire (RFC 6455) as berthd's servers speak it (`/containers/{id}/attach/ws`
//! and the CRI streaming server): the handshake's accept key, and frames read from a
//! client (always masked) and written to it (never masked).
//! Messages are not reassembled: [`read_frame`] hands back each frame's payload with its
//! opcode and FIN bit, bounded by [`MAX_FRAME`], and the caller follows continuations.

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The GUID a server appends to the client's key (RFC 6455 §1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The largest frame payload accepted from a client: client-go's writer sends frames of
/// at most its 32 KiB buffer; anything far beyond is refused, never allocated.
pub const MAX_FRAME: u64 = 1 << 20;

/// Frame opcodes.
pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Close codes.
pub const CLOSE_NORMAL: u16 = 1000;

/// What went wrong on the wire.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error("websocket: {0}")]
    Io(#[from] std::io::Error),
    #[error("websocket: a client frame must be masked")]
    Unmasked,
    #[error("websocket: a frame of {0} bytes is over the limit")]
    TooLarge(u64),
    #[error("websocket: reserved bits or an unknown opcode {0:#x}")]
    Protocol(u8),
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut input = key.trim().as_bytes().to_vec();
    input.extend_from_slice(GUID.as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// One frame from the client.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// Reads one client frame; `None` at a clean end of the connection before a frame starts.
pub async fn read_frame(r: &mut (impl AsyncRead + Unpin)) -> Result<Option<Frame>, WsError> {
    let mut head = [0u8; 2];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let [b0, b1] = head;
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0f;
    if b0 & 0x70 != 0 || !matches!(opcode, 0x0..=0x2 | 0x8..=0xA) {
        return Err(WsError::Protocol(b0));
    }
    if b1 & 0x80 == 0 {
        return Err(WsError::Unmasked);
    }
    let len = match b1 & 0x7f {
        126 => u64::from(r.read_u16().await?),
        127 => r.read_u64().await?,
        n => u64::from(n),
    };
    // Control frames carry at most 125 bytes (RFC 6455 §5.5).
    if len > MAX_FRAME || (opcode >= OP_CLOSE && len > 125) {
        return Err(WsError::TooLarge(len));
    }
    let mut mask = [0u8; 4];
    r.read_exact(&mut mask).await?;
    let mut payload = vec![0u8; usize::try_from(len).map_err(|_| WsError::TooLarge(len))?];
    r.read_exact(&mut payload).await?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok(Some(Frame {
        fin,
        opcode,
        payload,
    }))
}

/// Encodes one unmasked, final server frame carrying `parts` joined.
pub fn encode_frame(opcode: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(len + 10);
    out.push(0x80 | (opcode & 0x0f));
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// Writes one final frame.
pub async fn write_frame(
    w: &mut (impl AsyncWrite + Unpin),
    opcode: u8,
    parts: &[&[u8]],
) -> std::io::Result<()> {
    w.write_all(&encode_frame(opcode, parts)).await?;
    w.flush().await
}

/// Writes a close frame with `code`.
pub async fn write_close(w: &mut (impl AsyncWrite + Unpin), code: u16) -> std::io::Result<()> {
    write_frame(w, OP_CLOSE, &[&code.to_be_bytes()]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(b0: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![b0];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn accept_key_is_rfc_6455s_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[tokio::test]
    async fn reads_masked_frames_of_each_length_form() {
        for len in [0usize, 5, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let wire = masked(0x82, &payload, [1, 2, 3, 4]);
            let f = read_frame(&mut &wire[..]).await.unwrap().unwrap();
            assert_eq!(
                f,
                Frame {
                    fin: true,
                    opcode: OP_BINARY,
                    payload
                },
                "{len}"
            );
        }
        let cont = masked(0x00, b"ab", [9, 9, 9, 9]);
        let f = read_frame(&mut &cont[..]).await.unwrap().unwrap();
        assert!(!f.fin && f.opcode == OP_CONTINUATION && f.payload == b"ab");
        assert!(read_frame(&mut &[][..]).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn refuses_what_a_client_may_not_send() {
        // Unmasked.
        let e = read_frame(&mut &[0x82u8, 0x01, b'x'][..])
            .await
            .unwrap_err();
        assert!(matches!(e, WsError::Unmasked), "{e}");
        // Over the bound: refused from the header, nothing allocated.
        let mut huge = vec![0x82u8, 0xff];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        let e = read_frame(&mut &huge[..]).await.unwrap_err();
        assert!(matches!(e, WsError::TooLarge(_)), "{e}");
        // A control frame over 125 bytes.
        let e = read_frame(&mut &masked(0x89, &[0; 126], [0; 4])[..])
            .await
            .unwrap_err();
        assert!(matches!(e, WsError::TooLarge(126)), "{e}");
        // Reserved bits, unknown opcode.
        for b0 in [0xC2u8, 0x83, 0x8B] {
            let e = read_frame(&mut &masked(b0, b"x", [0; 4])[..])
                .await
                .unwrap_err();
            assert!(matches!(e, WsError::Protocol(_)), "{b0:#x}: {e}");
        }
        // Cut in the middle of a payload.
        let mut cut = masked(0x82, b"hello", [1, 1, 1, 1]);
        cut.truncate(cut.len() - 2);
        assert!(read_frame(&mut &cut[..]).await.is_err());
    }

    #[test]
    fn encodes_server_frames_unmasked() {
        assert_eq!(
            encode_frame(OP_BINARY, &[&[1], b"hi"]),
            [0x82, 3, 1, b'h', b'i']
        );
        let big = vec![7u8; 300];
        let f = encode_frame(OP_BINARY, &[&big]);
        assert_eq!(&f[..4], &[0x82, 126, 1, 44]);
        assert_eq!(f.len(), 304);
        let huge = vec![0u8; 70_000];
        let f = encode_frame(OP_BINARY, &[&huge]);
        assert_eq!(f[1], 127);
        assert_eq!(u64::from_be_bytes(f[2..10].try_into().unwrap()), 70_000);
    }
}
