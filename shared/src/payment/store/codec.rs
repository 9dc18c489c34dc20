//! How a stored document (a payment's record, an event) is encoded in Redis: its JSON
//! compressed with zstd against a fixed dictionary of typical documents, behind a one-byte tag
//! naming that dictionary. Most of a record's JSON is its field names and the values most
//! payments share; against the dictionary a pending payment's 900 bytes of JSON take about
//! 150. Documents written by earlier versions are plain JSON (they start with `{`) and are
//! read as they are.
//!
//! Redis's scripts never look inside a compressed document: what they need of one is kept
//! beside it in fields of its own (status, tenant, version, its events' ids).

use std::cell::RefCell;
use std::sync::OnceLock;

use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// The tag of documents compressed against [`DICTIONARY`].
const TAG_V1: u8 = 1;

/// Typical documents (an event, a finished and a pending payment, with placeholder ids),
/// as zstd's "raw content" dictionary: compression refers back into it.
///
/// Part of the stored format: documents written against it can only be read with it, so it
/// never changes. A better dictionary gets a new tag beside this one.
const DICTIONARY: &[u8] = include_bytes!("dictionary.json");

/// zstd's level: 3, its default, compresses a record in microseconds; higher levels gain a
/// few bytes a document at several times the CPU.
const LEVEL: i32 = 3;

/// No stored document is anywhere near this large; a corrupt one claiming more is refused
/// rather than allocated.
const MAX_DOCUMENT: usize = 4 << 20;

/// Why a stored document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("stored document has unknown encoding tag {0}")]
    UnknownTag(u8),
    #[error("stored document is empty")]
    Empty,
    #[error("stored document does not decompress: {0}")]
    Corrupt(std::io::Error),
    #[error("stored document is not UTF-8")]
    NotText,
    #[error("stored document's pieces are missing or miscounted")]
    Pieces,
    #[error("a script handed over a document of unknown form")]
    Form,
    #[error("event {0} is kept as a payment's record but is not that payment's created event")]
    NotCreatedEvent(String),
}

fn encoder_dictionary() -> &'static EncoderDictionary<'static> {
    static DICT: OnceLock<EncoderDictionary<'static>> = OnceLock::new();
    DICT.get_or_init(|| EncoderDictionary::copy(DICTIONARY, LEVEL))
}

fn decoder_dictionary() -> &'static DecoderDictionary<'static> {
    static DICT: OnceLock<DecoderDictionary<'static>> = OnceLock::new();
    DICT.get_or_init(|| DecoderDictionary::copy(DICTIONARY))
}

thread_local! {
    // A zstd context is worth keeping: making one allocates its tables.
    static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// `json` as stored.
pub fn pack(json: &str) -> Vec<u8> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = match cell.as_mut() {
            Some(c) => c,
            None => cell.insert(
                Compressor::with_prepared_dictionary(encoder_dictionary())
                    .expect("zstd allocates a compression context"),
            ),
        };
        let mut body = Vec::with_capacity(zstd::zstd_safe::compress_bound(json.len()));
        compressor
            .compress_to_buffer(json.as_bytes(), &mut body)
            .expect("a buffer of compress_bound bytes holds any compressed document");
        let mut out = Vec::with_capacity(1 + body.len());
        out.push(TAG_V1);
        out.extend_from_slice(&body);
        out
    })
}

/// The JSON of a stored document, whichever way it was written.
pub fn unpack(stored: &[u8]) -> Result<String, CodecError> {
    match stored.first() {
        None => Err(CodecError::Empty),
        Some(b'{') => String::from_utf8(stored.to_vec()).map_err(|_| CodecError::NotText),
        Some(&TAG_V1) => {
            let json = DECOMPRESSOR.with(|cell| {
                let mut cell = cell.borrow_mut();
                let decompressor = match cell.as_mut() {
                    Some(d) => d,
                    None => cell.insert(
                        Decompressor::with_prepared_dictionary(decoder_dictionary())
                            .map_err(CodecError::Corrupt)?,
                    ),
                };
                decompressor
                    .decompress(&stored[1..], MAX_DOCUMENT)
                    .map_err(CodecError::Corrupt)
            })?;
            String::from_utf8(json).map_err(|_| CodecError::NotText)
        }
        Some(&tag) => Err(CodecError::UnknownTag(tag)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    const RECORD: &str = r#"{"id":"osp_qttkF1XRLOZNxwsEjR7X93VI","object":"off_session_payment","status":"pending","customer":"cus_1","payment_method":null,"amount":{"value":1000,"currency":"usd"},"purpose":"subscription","context":{"invoice_id":"in_1"},"initiated_by":{"type":"service","id":"bench"},"description":null,"statement_descriptor_suffix":null,"metadata":{},"charge_at":"2027-05-01T00:00:00Z","retry_policy":{"strategy":"scheduled","max_attempts":4,"window_hours":336,"fallback_to_other_cards":false},"next_attempt_at":"2027-05-01T00:00:00Z","cancel_requested":false,"processor_payment_intent":null,"last_error":null,"attempts":[],"created_at":"2026-11-29T13:56:54.106Z","updated_at":"2026-11-29T13:56:54.106Z","events":[{"id":"evt_VNKDfHY4wf7q6lRH0PN6RVdF","type":"off_session_payment.created","created_at":"2026-11-29T13:56:54.106Z","initiated_by":{"type":"service","id":"bench"}}]}"#;

    #[test]
    fn a_document_reads_back_as_written_and_takes_a_fraction_of_its_json() {
        let stored = pack(RECORD);
        assert_eq!(stored[0], TAG_V1);
        assert_eq!(unpack(&stored).unwrap(), RECORD);
        assert!(
            stored.len() * 4 < RECORD.len(),
            "{} bytes stored for {} of JSON",
            stored.len(),
            RECORD.len()
        );
    }

    #[test]
    fn documents_written_as_json_by_earlier_versions_read_as_they_are() {
        assert_eq!(unpack(RECORD.as_bytes()).unwrap(), RECORD);
    }

    #[test]
    fn what_is_not_a_document_is_refused_not_misread() {
        assert!(matches!(unpack(b""), Err(CodecError::Empty)));
        assert!(matches!(unpack(b"\x07abc"), Err(CodecError::UnknownTag(7))));
        let mut stored = pack(RECORD);
        stored.truncate(stored.len() / 2);
        assert!(matches!(unpack(&stored), Err(CodecError::Corrupt(_))));
    }

    #[test]
    fn any_text_round_trips() {
        for json in ["{}", "{\"a\":\"ü\\u0000\"}", &"{\"x\":1}".repeat(5_000)] {
            assert_eq!(unpack(&pack(json)).unwrap(), json);
        }
    }

    /// The dictionary is part of the stored format: documents written against it are unreadable
    /// without it. Add a dictionary under a new tag instead of editing this one.
    #[test]
    fn the_dictionary_never_changes() {
        assert_eq!(
            hex::encode(Sha256::digest(DICTIONARY)),
            "849e849969c870d54c4fdf88051dd2df42ebd21f18eb3a062bdc8b8e0fa7be52",
            "the tag {TAG_V1} dictionary changed: stored documents would no longer read"
        );
    }
}
