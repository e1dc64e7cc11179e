//! A minimal SPDY/3.1 framer (the subset docker/spdystream uses, which is what the Kubernetes
//! streaming protocols ride on): SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY,
//! HEADERS, WINDOW_UPDATE and DATA frames, with zlib-compressed header blocks that share one
//! compression context per direction and use the SPDY/3 dictionary.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::spdy_dictionary::SPDY3_DICTIONARY;

/// The SPDY version spoken.
const VERSION: u16 = 3;
/// Flag FIN on SYN_STREAM, SYN_REPLY and DATA.
pub const FLAG_FIN: u8 = 0x01;
/// Largest frame accepted (the length field has 24 bits).
const MAX_FRAME: usize = 1 << 24;

/// Errors of the framer.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    /// A frame could not be parsed.
    #[error("invalid SPDY frame: {0}")]
    Invalid(String),
    /// zlib failed.
    #[error("SPDY header compression: {0}")]
    Zlib(String),
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// Stream id (odd from the client).
        stream_id: u32,
        /// Associated stream.
        associated: u32,
        /// Priority (0–7).
        priority: u8,
        /// Flags (FIN, UNIDIRECTIONAL).
        flags: u8,
        /// Header pairs, names lowercase.
        headers: Vec<(String, String)>,
    },
    /// Accepts a stream.
    SynReply {
        /// Stream id.
        stream_id: u32,
        /// Flags (FIN).
        flags: u8,
        /// Header pairs.
        headers: Vec<(String, String)>,
    },
    /// Aborts a stream.
    RstStream {
        /// Stream id.
        stream_id: u32,
        /// Status code.
        status: u32,
    },
    /// Connection settings (content ignored).
    Settings,
    /// A ping, echoed by the receiver.
    Ping(u32),
    /// The sender will open no more streams.
    GoAway {
        /// Last stream id processed.
        last_good: u32,
        /// Status code.
        status: u32,
    },
    /// Extra headers of a stream.
    Headers {
        /// Stream id.
        stream_id: u32,
        /// Header pairs.
        headers: Vec<(String, String)>,
    },
    /// Flow control (ignored, as spdystream does).
    WindowUpdate {
        /// Stream id.
        stream_id: u32,
        /// Window increase.
        delta: u32,
    },
    /// Stream data.
    Data {
        /// Stream id.
        stream_id: u32,
        /// Flags (FIN).
        flags: u8,
        /// Payload.
        data: Bytes,
    },
    /// A control frame of an unknown type (skipped).
    Unknown(u16),
}

impl Frame {
    /// The value of header `name` of a SYN_STREAM/SYN_REPLY/HEADERS frame.
    pub fn header(&self, name: &str) -> Option<&str> {
        match self {
            Frame::SynStream { headers, .. }
            | Frame::SynReply { headers, .. }
            | Frame::Headers { headers, .. } => headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

/// Encodes frames; owns the sending direction's header compressor.
pub struct Encoder {
    z: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    /// A new encoder (fresh compression context).
    pub fn new() -> Encoder {
        let mut z = Compress::new(Compression::default(), true);
        z.set_dictionary(&SPDY3_DICTIONARY)
            .expect("setting a dictionary on a fresh zlib stream cannot fail");
        Encoder { z }
    }

    fn header_block(&mut self, headers: &[(String, String)]) -> Result<Vec<u8>, SpdyError> {
        let mut raw = Vec::new();
        raw.put_u32(headers.len() as u32);
        for (k, v) in headers {
            let k = k.to_ascii_lowercase();
            raw.put_u32(k.len() as u32);
            raw.put_slice(k.as_bytes());
            raw.put_u32(v.len() as u32);
            raw.put_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut consumed = 0usize;
        loop {
            out.reserve(256);
            let before = self.z.total_in();
            self.z
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Zlib(e.to_string()))?;
            consumed += (self.z.total_in() - before) as usize;
            if consumed == raw.len() && out.len() < out.capacity() {
                break;
            }
        }
        Ok(out)
    }

    fn control(out: &mut BytesMut, kind: u16, flags: u8, body: &[u8]) {
        out.put_u16(0x8000 | VERSION);
        out.put_u16(kind);
        out.put_u32((u32::from(flags) << 24) | body.len() as u32);
        out.put_slice(body);
    }

    /// Appends `frame`'s bytes to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), SpdyError> {
        match frame {
            Frame::SynStream {
                stream_id,
                associated,
                priority,
                flags,
                headers,
            } => {
                let mut body = Vec::new();
                body.put_u32(stream_id & 0x7fff_ffff);
                body.put_u32(associated & 0x7fff_ffff);
                body.put_u8((priority & 0x7) << 5);
                body.put_u8(0);
                body.extend_from_slice(&self.header_block(headers)?);
                Self::control(out, 1, *flags, &body);
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => {
                let mut body = Vec::new();
                body.put_u32(stream_id & 0x7fff_ffff);
                body.extend_from_slice(&self.header_block(headers)?);
                Self::control(out, 2, *flags, &body);
            }
            Frame::RstStream { stream_id, status } => {
                let mut body = Vec::new();
                body.put_u32(stream_id & 0x7fff_ffff);
                body.put_u32(*status);
                Self::control(out, 3, 0, &body);
            }
            Frame::Settings => Self::control(out, 4, 0, &0u32.to_be_bytes()),
            Frame::Ping(id) => Self::control(out, 6, 0, &id.to_be_bytes()),
            Frame::GoAway { last_good, status } => {
                let mut body = Vec::new();
                body.put_u32(last_good & 0x7fff_ffff);
                body.put_u32(*status);
                Self::control(out, 7, 0, &body);
            }
            Frame::Headers { stream_id, headers } => {
                let mut body = Vec::new();
                body.put_u32(stream_id & 0x7fff_ffff);
                body.extend_from_slice(&self.header_block(headers)?);
                Self::control(out, 8, 0, &body);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let mut body = Vec::new();
                body.put_u32(stream_id & 0x7fff_ffff);
                body.put_u32(delta & 0x7fff_ffff);
                Self::control(out, 9, 0, &body);
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32((u32::from(*flags) << 24) | data.len() as u32);
                out.put_slice(data);
            }
            Frame::Unknown(_) => {}
        }
        Ok(())
    }
}

/// Decodes frames; owns the receiving direction's header decompressor.
pub struct Decoder {
    z: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A new decoder (fresh decompression context).
    pub fn new() -> Decoder {
        Decoder {
            z: Decompress::new(true),
        }
    }

    fn inflate(&mut self, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let mut consumed = 0usize;
        loop {
            out.reserve(1024);
            let before = self.z.total_in();
            let r = self
                .z
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.z.total_in() - before) as usize;
            match r {
                Ok(Status::Ok | Status::BufError | Status::StreamEnd) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(&SPDY3_DICTIONARY)
                        .map_err(|e| SpdyError::Zlib(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(SpdyError::Zlib(e.to_string())),
            }
            if consumed >= input.len() && out.len() < out.capacity() {
                break;
            }
            if consumed >= input.len() && self.z.total_in() == before {
                break;
            }
        }
        Ok(out)
    }

    fn headers(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
        let raw = self.inflate(block)?;
        let mut b = &raw[..];
        let bad = || SpdyError::Invalid("truncated header block".into());
        if b.remaining() < 4 {
            return Err(bad());
        }
        let n = b.get_u32();
        let mut out = Vec::new();
        for _ in 0..n {
            let mut field = || -> Result<String, SpdyError> {
                if b.remaining() < 4 {
                    return Err(bad());
                }
                let len = b.get_u32() as usize;
                if b.remaining() < len {
                    return Err(bad());
                }
                let s = String::from_utf8_lossy(&b[..len]).into_owned();
                b.advance(len);
                Ok(s)
            };
            let k = field()?;
            let v = field()?;
            out.push((k.to_ascii_lowercase(), v));
        }
        Ok(out)
    }

    /// Takes one whole frame off the front of `buf`, or `None` if more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = (u32::from_be_bytes([0, buf[5], buf[6], buf[7]])) as usize;
        if len >= MAX_FRAME {
            return Err(SpdyError::Invalid("frame too large".into()));
        }
        if buf.len() < 8 + len {
            return Ok(None);
        }
        let head = buf.split_to(8);
        let body = buf.split_to(len).freeze();
        let flags = head[4];
        let short = || SpdyError::Invalid("short control frame".into());
        if head[0] & 0x80 == 0 {
            let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
            return Ok(Some(Frame::Data {
                stream_id,
                flags,
                data: body,
            }));
        }
        let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
        if version != VERSION {
            return Err(SpdyError::Invalid(format!("unsupported version {version}")));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let mut b = &body[..];
        let id = |b: &mut &[u8]| -> Result<u32, SpdyError> {
            if b.remaining() < 4 {
                return Err(short());
            }
            Ok(b.get_u32() & 0x7fff_ffff)
        };
        let frame = match kind {
            1 => {
                let stream_id = id(&mut b)?;
                let associated = id(&mut b)?;
                if b.remaining() < 2 {
                    return Err(short());
                }
                let priority = b.get_u8() >> 5;
                b.advance(1);
                Frame::SynStream {
                    stream_id,
                    associated,
                    priority,
                    flags,
                    headers: self.headers(b)?,
                }
            }
            2 => {
                let stream_id = id(&mut b)?;
                Frame::SynReply {
                    stream_id,
                    flags,
                    headers: self.headers(b)?,
                }
            }
            3 => Frame::RstStream {
                stream_id: id(&mut b)?,
                status: id(&mut b)?,
            },
            4 => Frame::Settings,
            6 => Frame::Ping(id(&mut b)?),
            7 => Frame::GoAway {
                last_good: id(&mut b)?,
                status: id(&mut b)?,
            },
            8 => {
                let stream_id = id(&mut b)?;
                Frame::Headers {
                    stream_id,
                    headers: self.headers(b)?,
                }
            }
            9 => Frame::WindowUpdate {
                stream_id: id(&mut b)?,
                delta: id(&mut b)?,
            },
            other => Frame::Unknown(other),
        };
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dictionary_is_the_spdy3_one() {
        assert_eq!(SPDY3_DICTIONARY.len(), 1423);
        assert_eq!(&SPDY3_DICTIONARY[..11], b"\0\0\0\x07options");
        assert!(SPDY3_DICTIONARY.ends_with(b"enq=0."));
    }

    #[test]
    fn round_trips_every_frame_and_shares_the_header_context() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated: 0,
                priority: 0,
                flags: 0,
                headers: h(&[
                    ("streamtype", "error"),
                    ("port", "8080"),
                    ("requestid", "0"),
                ]),
            },
            Frame::SynStream {
                stream_id: 3,
                associated: 0,
                priority: 2,
                flags: FLAG_FIN,
                headers: h(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: vec![],
            },
            Frame::Data {
                stream_id: 3,
                flags: 0,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: Bytes::new(),
            },
            Frame::Ping(7),
            Frame::RstStream {
                stream_id: 5,
                status: 5,
            },
            Frame::Headers {
                stream_id: 3,
                headers: h(&[("x", "y")]),
            },
            Frame::WindowUpdate {
                stream_id: 3,
                delta: 1000,
            },
            Frame::GoAway {
                last_good: 3,
                status: 0,
            },
        ];
        let mut enc = Encoder::new();
        let mut buf = BytesMut::new();
        for f in &frames {
            enc.encode(f, &mut buf).expect("encode");
        }
        // Header blocks after the first are compressed against the same context: decoding
        // them with a fresh decoder in order must work; feeding byte by byte must too.
        let mut dec = Decoder::new();
        let mut input = BytesMut::new();
        let mut got = Vec::new();
        for b in buf.iter() {
            input.put_u8(*b);
            while let Some(f) = dec.decode(&mut input).expect("decode") {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        assert_eq!(got[0].header("streamType"), Some("error"));
    }

    #[test]
    fn decodes_a_go_spdystream_syn_stream() {
        // The first SYN_STREAM's header block starts with a zlib header announcing a preset
        // dictionary (FDICT) whose Adler-32 is that of the SPDY/3 dictionary.
        let mut enc = Encoder::new();
        let mut buf = BytesMut::new();
        enc.encode(
            &Frame::SynStream {
                stream_id: 1,
                associated: 0,
                priority: 0,
                flags: 0,
                headers: h(&[("streamtype", "stdout")]),
            },
            &mut buf,
        )
        .expect("encode");
        let block = &buf[18..];
        assert_eq!(block[0] & 0x0f, 8, "deflate");
        assert_ne!(block[1] & 0x20, 0, "FDICT set");
        assert_eq!(
            &block[2..6],
            &[0xe3, 0xc6, 0xa7, 0xc2],
            "adler32 of the dictionary"
        );
    }

    #[test]
    fn rejects_garbage() {
        let mut dec = Decoder::new();
        let mut b = BytesMut::from(&[0x80u8, 0x02, 0, 1, 0, 0, 0, 0][..]);
        assert!(dec.decode(&mut b).is_err());
    }
}
