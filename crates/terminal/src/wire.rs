//! Reading CUP frames from a byte stream: the one reader of the terminal's driver and the
//! simulation's fault proxy. The length prefix is checked against the codec's bound before
//! anything is allocated for the frame.

use tokio::io::{AsyncRead, AsyncReadExt};

use poskit_codec::frame::{self, FRAME_BYTES_MAX, LENGTH_BYTES};

/// What a TLS server answers a client that spoke plain CUP framing to it: a TLS record
/// (an alert or a handshake, versions 3.x), read as a length prefix, then the connection
/// closed before that many bytes came.
#[derive(Debug, thiserror::Error)]
#[error("the host answered with TLS, not a CUP frame: it expects TLS (give the terminal --tls-ca)")]
pub struct TlsAnswer;

/// Whether a read error is [`TlsAnswer`].
pub fn is_tls_answer(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TlsAnswer>())
}

/// Reads one whole frame (length prefix included). An announced length over
/// `FRAME_BYTES_MAX` is `InvalidData` before the body is read. No deadline of its own: the
/// caller bounds the wait (a `select!` on its timer, a `timeout`).
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<Vec<u8>> {
    let mut prefix = [0u8; LENGTH_BYTES];
    reader.read_exact(&mut prefix).await?;
    let total = frame::frame_len(&prefix)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?
        .unwrap_or(LENGTH_BYTES);
    assert!(
        (LENGTH_BYTES..=FRAME_BYTES_MAX).contains(&total),
        "frame_len keeps a frame within its bounds"
    );
    let mut buf = vec![0u8; total];
    buf[..LENGTH_BYTES].copy_from_slice(&prefix);
    if let Err(e) = reader.read_exact(&mut buf[LENGTH_BYTES..]).await {
        // A TLS record's type (alert 21, handshake 22) and major version 3, cut short.
        if matches!(prefix, [0x15 | 0x16, 0x03]) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                TlsAnswer,
            ));
        }
        return Err(e);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn reads_frames_one_after_another_prefix_included() {
        let bytes: &[u8] = &[0, 3, b'a', b'b', b'c', 0, 1, b'z'];
        let mut reader = bytes;
        assert_eq!(run(read_frame(&mut reader)).unwrap(), b"\x00\x03abc");
        assert_eq!(run(read_frame(&mut reader)).unwrap(), b"\x00\x01z");
        assert!(run(read_frame(&mut reader)).is_err(), "nothing left");
    }

    #[test]
    fn an_oversize_length_is_refused_before_the_body_is_read() {
        let bytes: &[u8] = &[0xFF, 0xFF];
        let mut reader = bytes;
        let err = run(read_frame(&mut reader)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_tls_alert_is_told_apart() {
        let bytes: &[u8] = &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32];
        let mut reader = bytes;
        let err = run(read_frame(&mut reader)).unwrap_err();
        assert!(is_tls_answer(&err), "{err}");
        assert!(err.to_string().contains("--tls-ca"), "{err}");
    }

    #[test]
    fn a_frame_cut_short_is_an_error() {
        let bytes: &[u8] = &[0, 5, b'a', b'b'];
        let mut reader = bytes;
        let err = run(read_frame(&mut reader)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
