//! Request frames through the broker's decode path: header, then the body
//! as the API's handler decodes it, then (Produce) each partition's
//! records through the validation an append starts with.
//!
//! Input: the first byte picks the mode.
//! - even: the rest is a raw frame body (what follows the 4-byte length).
//! - odd: the next two bytes pick an API and a version from the table Rill
//!   implements, the third says whether the header has a client id; a
//!   well-formed header for them is built and the rest is the body. Every
//!   API key and version is reached this way, however unlikely a raw
//!   frame would be to name it.
#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rill_server::fuzzing::{Decoded, decode_request, supported_apis};

/// The broker's default max.message.bytes.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024 + 12;

const CORRELATION_ID: i32 = 0x0102_0304;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        check(decode_request(Bytes::copy_from_slice(rest)), None);
        return;
    }
    let [api_at, version_at, client_id, body @ ..] = rest else {
        return;
    };
    let apis = supported_apis();
    let (api, min, max) = apis[usize::from(*api_at) % apis.len()];
    let version = min + i16::from(*version_at) % (max - min + 1);
    let mut frame = BytesMut::new();
    frame.put_i16(api as i16);
    frame.put_i16(version);
    frame.put_i32(CORRELATION_ID);
    let header_version = api.request_header_version(version);
    if header_version >= 1 {
        if client_id % 2 == 0 {
            frame.put_i16(-1); // null client id
        } else {
            frame.put_i16(4);
            frame.put_slice(b"fuzz");
        }
    }
    if header_version >= 2 {
        frame.put_u8(0); // no tagged fields
    }
    frame.put_slice(body);
    let decoded = decode_request(frame.freeze());
    // A well-formed header for a supported API and version never fails.
    if let Err(rill_server::fuzzing::DecodeError::Header(error)) = &decoded {
        panic!("{api:?} v{version}: the built header was refused: {error}");
    }
    check(decoded, Some((api as i16, version)));
});

/// What every decoded request must satisfy; `expected` is the API and
/// version of a built header.
fn check(
    decoded: Result<Decoded, rill_server::fuzzing::DecodeError>,
    expected: Option<(i16, i16)>,
) {
    let Ok(Decoded::Request {
        header,
        api,
        produce_records,
    }) = decoded
    else {
        return;
    };
    assert_eq!(header.request_api_key, api as i16);
    let (_, min, max) = supported_apis()
        .iter()
        .find(|(key, _, _)| *key == api)
        .copied()
        .expect("a decoded request is of a supported API");
    assert!((min..=max).contains(&header.request_api_version));
    if let Some((key, version)) = expected {
        assert_eq!(
            (header.request_api_key, header.request_api_version),
            (key, version)
        );
        assert_eq!(header.correlation_id, CORRELATION_ID);
    }
    for records in produce_records.iter().flatten() {
        if let Ok(batch) = rill_record::validate_produced(records, MAX_MESSAGE_BYTES) {
            assert_eq!(batch.size(), records.len());
        }
    }
}
