//! How the embedded log keeps each event's JSON: its `payload` column.
//!
//! A row holds either
//! - **TEXT**: the JSON as it is, as every row written before schema 8 of
//!   `events.db` (`events_0008.sql`) does; or
//! - **BLOB**: a format byte, then the JSON compressed by zstd (RFC 8878)
//!   against a dictionary of sample events. [`FORMAT_ZSTD_SAMPLE_EVENTS_V1`]
//!   is the only format: a zstd frame that records its content size and a
//!   checksum of it (RFC 8878, 3.1.1: the low 4 bytes of its XXH64), so that
//!   bytes changed on disk fail to decompress rather than read back as
//!   another event, compressed against
//!   `payload_dictionary_v1.json`: 18 events as this server wrote them, one
//!   or two of each type a client's request makes, the commonest last (zstd
//!   reaches the end of a raw dictionary at the smallest cost).
//!
//! Why: an event's JSON is about 370 bytes, most of them the field names,
//! types and identifier shapes every event shares. A 1 KiB page of the log
//! held 1.7 events, so each appended event wrote about 600 bytes to the WAL
//! and as many again when the checkpoint copied it; against the dictionary
//! the JSON takes about 140 bytes (bench/README.md, "The projections'
//! batches under load, and the log's events compressed").
//!
//! A dictionary, once rows were compressed against it, never changes: those
//! rows are read with it. Another dictionary takes another format byte, and
//! the reader keeps both.

use std::cell::RefCell;
use std::sync::OnceLock;

use rusqlite::types::ValueRef;
use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// The first byte of a BLOB payload: zstd against `payload_dictionary_v1.json`.
pub const FORMAT_ZSTD_SAMPLE_EVENTS_V1: u8 = 1;

/// The raw-content dictionary of [`FORMAT_ZSTD_SAMPLE_EVENTS_V1`]. Never
/// edited: rows compressed against it are read with it.
const DICTIONARY_V1: &[u8] = include_bytes!("payload_dictionary_v1.json");

/// zstd's compression level (1 to 22). On the mix's events 1 and 3 gave the
/// same size against the dictionary; 1 takes the least CPU of the caller
/// that compresses.
pub const COMPRESSION_LEVEL: i32 = 1;

/// Bytes an event's JSON may take once decompressed: a BLOB whose frame
/// says more is damage, not an event (the largest event, a description of
/// the most characters allowed in every byte-wide escape, is far below).
pub const PAYLOAD_BYTES_MAX: usize = 256 * 1024;

/// Why a stored payload cannot be read. Each means the row is not what this
/// store wrote: the file is damaged.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the payload is {0}, neither text nor a blob")]
    NotTextOrBlob(&'static str),
    #[error("the payload is an empty blob")]
    Empty,
    #[error("the payload's format byte is {0}; this build knows {FORMAT_ZSTD_SAMPLE_EVENTS_V1}")]
    UnknownFormat(u8),
    #[error(
        "the payload is not one zstd frame recording a content of 1 to {PAYLOAD_BYTES_MAX} bytes"
    )]
    NotOneFrame,
    #[error("the payload does not decompress")]
    Decompress(#[source] std::io::Error),
    #[error("the payload's JSON is not UTF-8")]
    NotUtf8(#[source] std::string::FromUtf8Error),
}

fn encoder_dictionary() -> &'static EncoderDictionary<'static> {
    static DICTIONARY: OnceLock<EncoderDictionary<'static>> = OnceLock::new();
    DICTIONARY.get_or_init(|| EncoderDictionary::copy(DICTIONARY_V1, COMPRESSION_LEVEL))
}

fn decoder_dictionary() -> &'static DecoderDictionary<'static> {
    static DICTIONARY: OnceLock<DecoderDictionary<'static>> = OnceLock::new();
    DICTIONARY.get_or_init(|| DecoderDictionary::copy(DICTIONARY_V1))
}

/// Builds the dictionaries' prepared forms now, so that no request pays
/// for them: 90 µs for the compression one's match tables and 16 µs for
/// the other, which the first append and the first read after a start
/// waited for (a thread's first compression or decompression still makes
/// its context, 45-60 µs; later ones take about 1.2 and 0.3 µs).
pub fn prepare() {
    encoder_dictionary();
    decoder_dictionary();
}

thread_local! {
    /// A compression context per thread (zstd's contexts are not shared),
    /// made at the thread's first append and kept.
    static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// The BLOB stored for an event's `json`: [`FORMAT_ZSTD_SAMPLE_EVENTS_V1`],
/// then the compressed frame.
///
/// # Errors
/// zstd's, when it cannot allocate its context.
pub fn compress(json: &str) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = match &mut *cell {
            Some(compressor) => compressor,
            empty => {
                let mut compressor = Compressor::with_prepared_dictionary(encoder_dictionary())?;
                compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
                empty.insert(compressor)
            }
        };
        let mut stored = compressor.compress(json.as_bytes())?;
        stored.insert(0, FORMAT_ZSTD_SAMPLE_EVENTS_V1);
        Ok(stored)
    })
}

/// The event's JSON from a stored `payload`: TEXT as it is, a BLOB
/// decompressed.
///
/// # Errors
/// [`PayloadError`] when the value is neither, or the BLOB is not one this
/// build writes.
pub fn json(stored: ValueRef<'_>) -> Result<String, PayloadError> {
    match stored {
        ValueRef::Text(text) => String::from_utf8(text.to_vec()).map_err(PayloadError::NotUtf8),
        ValueRef::Blob(blob) => decompress(blob),
        ValueRef::Null => Err(PayloadError::NotTextOrBlob("NULL")),
        ValueRef::Integer(_) => Err(PayloadError::NotTextOrBlob("an integer")),
        ValueRef::Real(_) => Err(PayloadError::NotTextOrBlob("a real")),
    }
}

fn decompress(blob: &[u8]) -> Result<String, PayloadError> {
    let (&format, frame) = blob.split_first().ok_or(PayloadError::Empty)?;
    if format != FORMAT_ZSTD_SAMPLE_EVENTS_V1 {
        return Err(PayloadError::UnknownFormat(format));
    }
    // What `compress` writes: exactly one frame, which records the size of
    // a JSON that is never empty. zstd itself would take an empty input, a
    // skippable frame or frames one after the other.
    let one_frame = zstd::zstd_safe::find_frame_compressed_size(frame) == Ok(frame.len());
    let content = zstd::zstd_safe::get_frame_content_size(frame);
    let Ok(Some(content @ 1..)) = content else {
        return Err(PayloadError::NotOneFrame);
    };
    if !one_frame || content > PAYLOAD_BYTES_MAX as u64 {
        return Err(PayloadError::NotOneFrame);
    }
    let bytes = DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let decompressor = match &mut *cell {
            Some(decompressor) => decompressor,
            empty => empty.insert(Decompressor::with_prepared_dictionary(decoder_dictionary())?),
        };
        decompressor.decompress(frame, PAYLOAD_BYTES_MAX)
    });
    String::from_utf8(bytes.map_err(PayloadError::Decompress)?).map_err(PayloadError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A credit as the mix writes it.
    const CREDIT: &str = r#"{"type":"WalletCredited","schemaVersion":1,"eventId":"01a24c26-2823-7074-8816-84387312d69d","walletId":"bench-a","occurredAt":"2026-12-06T16:18:18.787Z","amount":12.34,"balanceAfter":1000012.34,"metadata":{"idempotencyKey":null,"correlationId":"ee0edc01-053e-4b50-b51b-ce63c632d11b","causationId":"3a2867f4-0af5-4f4d-8ee3-e10a8600e4b9"}}"#;

    #[test]
    fn a_payload_round_trips_and_takes_a_third_of_its_json() {
        let stored = compress(CREDIT).expect("compressed");
        assert_eq!(stored[0], FORMAT_ZSTD_SAMPLE_EVENTS_V1);
        assert!(
            stored.len() * 2 < CREDIT.len(),
            "{} bytes for {}",
            stored.len(),
            CREDIT.len()
        );
        assert_eq!(json(ValueRef::Blob(&stored)).expect("read"), CREDIT);
    }

    #[test]
    fn a_text_payload_is_read_as_it_is() {
        assert_eq!(
            json(ValueRef::Text(CREDIT.as_bytes())).expect("read"),
            CREDIT
        );
    }

    /// Bytes [`compress`] wrote for [`CREDIT`] against the dictionary as
    /// released (not compared with what it writes now: another zstd may
    /// write other bytes that read back alike). If the dictionary changed,
    /// rows already stored would no longer read back.
    #[test]
    fn rows_written_against_the_released_dictionary_still_read() {
        let released: Vec<u8> = (0..RELEASED_CREDIT_HEX.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&RELEASED_CREDIT_HEX[at..at + 2], 16).expect("hex"))
            .collect();
        assert_eq!(json(ValueRef::Blob(&released)).expect("read"), CREDIT);
    }

    const RELEASED_CREDIT_HEX: &str = "0128b52ffd645100dd0300d2071615b0256de4100b4d12d1c9c9d62b97b6906908b0c173450118d4f6bf2ca775eda68f11664294db08bc1ca594e88c3a53b7c64a447da2e62d72d3cdd9effe3f5909833051480a24596006ab67b833a830cbd24799363cfa460a0084f9af5a11f4643a8a221a702794688a5242b63e3bc2e87736611e1d040292f46fcd";

    #[test]
    fn a_blob_this_build_did_not_write_is_refused() {
        assert!(matches!(
            json(ValueRef::Blob(&[])),
            Err(PayloadError::Empty)
        ));
        assert!(matches!(
            json(ValueRef::Blob(&[9, 1, 2])),
            Err(PayloadError::UnknownFormat(9))
        ));
        let whole = compress(CREDIT).expect("compressed");
        let cut_short = &whole[..whole.len() / 2];
        let twice = [&whole[..], &whole[1..]].concat();
        let empty = compress("").expect("compressed");
        // A skippable frame (RFC 8878, 3.1.2) of no content.
        let skippable = [
            FORMAT_ZSTD_SAMPLE_EVENTS_V1,
            0x50,
            0x2a,
            0x4d,
            0x18,
            0,
            0,
            0,
            0,
        ];
        for blob in [
            cut_short,
            &twice,
            &empty,
            &skippable,
            &[FORMAT_ZSTD_SAMPLE_EVENTS_V1],
        ] {
            assert!(
                matches!(json(ValueRef::Blob(blob)), Err(PayloadError::NotOneFrame)),
                "{blob:02x?}"
            );
        }
        // Any one bit flipped after the frame's header: its checksum no longer holds.
        for at in 8..whole.len() {
            let mut flipped = whole.clone();
            flipped[at] ^= 0x10;
            assert!(json(ValueRef::Blob(&flipped)).is_err(), "byte {at} flipped");
        }
        assert!(matches!(
            json(ValueRef::Null),
            Err(PayloadError::NotTextOrBlob("NULL"))
        ));
    }
}
