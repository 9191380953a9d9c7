//! Untrusted protocol bytes: the frame decoder and the message decoder never panic and never
//! allocate beyond their limits (run with `-malloc_limit_mb`); every frame they accept is
//! within the payload limit; every message they accept re-encodes to a message that decodes
//! equal; every listing batch they accept holds clean paths in strictly increasing order.
//!
//! The first byte picks how the rest is read: bits 0-1 the mode (0: a raw stream, 1: a raw
//! session stream that must open with a Hello, 2: `type byte + payload` of one message, 3: an
//! `Entries` payload checked as a listing), bits 2-7 the size of the pieces the stream is
//! pushed in (so frames are split at every kind of boundary).

#![no_main]

use delta_core::protocol::{
    check_entry, encode_frame, FrameDecoder, FrameEncoder, ListChecker, Message, MAX_PAYLOAD,
};
use libfuzzer_sys::fuzz_target;

fn check_message(msg_type: u8, payload: &[u8]) {
    let decoded = Message::decode(msg_type, payload);
    assert_eq!(
        Message::decode_owned(msg_type, payload.to_vec()),
        decoded,
        "decoding by value and by reference disagree"
    );
    let Ok(msg) = decoded else {
        return;
    };
    assert_eq!(msg.message_type().as_u8(), msg_type);
    let mut again = Vec::new();
    msg.encode(&mut again);
    assert_eq!(
        Message::decode(msg_type, &again).as_ref(),
        Ok(&msg),
        "re-encoded message decodes differently"
    );
    // Through frames too, compressed or not.
    for level in [None, Some(1)] {
        let mut out = Vec::new();
        FrameEncoder::new(level)
            .encode(&msg, &mut out)
            .expect("a decoded message fits a frame");
        let mut d = FrameDecoder::new();
        d.push(&out);
        let back = d.next_message().expect("own frame").expect("complete");
        assert_eq!(back, msg);
        d.finish().expect("nothing left");
    }
    if let Message::Entries(entries) = &msg {
        for e in entries {
            check_entry(e).expect("decoded entries are clean");
        }
    }
}

fn check_stream(data: &[u8], piece: usize, hello: bool) {
    let mut d = if hello {
        FrameDecoder::expecting_hello()
    } else {
        FrameDecoder::new()
    };
    for chunk in data.chunks(piece) {
        d.push(chunk);
        loop {
            match d.next() {
                Ok(Some(f)) => {
                    assert!(f.payload.len() <= MAX_PAYLOAD);
                    check_message(f.msg_type, &f.payload);
                    // A frame we accepted re-frames to the same payload.
                    let out = encode_frame(f.msg_type, &f.payload, None).expect("fits");
                    let mut again = FrameDecoder::new();
                    again.push(&out);
                    assert_eq!(
                        again.next().expect("own frame").expect("complete").payload,
                        f.payload
                    );
                }
                Ok(None) => break,
                Err(e) => {
                    // Errors are final.
                    assert_eq!(d.next(), Err(e.clone()));
                    assert_eq!(d.finish(), Err(e));
                    return;
                }
            }
        }
    }
    let _ = d.finish();
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let piece = usize::from(control >> 2) + 1;
    match control & 3 {
        0 => check_stream(rest, piece, false),
        1 => check_stream(rest, piece, true),
        2 => {
            if let Some((&msg_type, payload)) = rest.split_first() {
                check_message(msg_type, payload);
            }
        }
        _ => {
            check_message(0x10, rest);
            if let Ok(Message::Entries(entries)) = Message::decode(0x10, rest) {
                // A batch that decodes is ordered; as a whole listing it may still be an
                // orphan, but the checker must agree with the order and never panic.
                let _ = ListChecker::new().check_batch(&entries);
            }
        }
    }
});
