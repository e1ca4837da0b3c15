//! The stored shape of every event type, pinned: events written by earlier
//! builds (schemaVersion 1) must decode, and encode back to the same bytes.
//! The amount sits once in the decoded event, in its kind; the wire keeps its
//! `amount` field, derived from the kind.

use rust_decimal::Decimal;
use wallet_domain::{EventDecodeError, WalletEvent};

const META: &str =
    r#""metadata":{"idempotencyKey":"key-1","correlationId":"corr-1","causationId":null}"#;
const TRANSFER_META: &str = r#""metadata":{"idempotencyKey":null,"correlationId":null,"causationId":null,"transferId":"0190f5a4-1c2d-7e3f-8a4b-5c6d7e8f9a0b","principal":"gateway-7"}"#;

/// One stored JSON per event type, each as the encoder writes it (field
/// order included), with the amount the wire says it moved.
fn stored_events() -> Vec<(String, &'static str)> {
    // type, amount, balanceAfter, the type's own fields (each followed by a
    // comma), metadata.
    #[rustfmt::skip]
    let rows: [(&str, &'static str, &str, &str, &str); 18] = [
        ("WalletCreated", "100.00", "100.00", r#""ownerId":"user-456","overdraftLimit":0.00,"#, META),
        ("WalletCreated", "0.00", "0.00", r#""ownerId":"user-9","overdraftLimit":25.00,"#, META),
        ("WalletCredited", "50.00", "150.00", r#""description":"Deposit","#, META),
        ("WalletDebited", "0.01", "149.99", "", META),
        ("TransferSent", "49.99", "100.00", r#""counterpartyWalletId":"wallet-9","description":"Rent","#, TRANSFER_META),
        ("TransferReceived", "1000000000000.00", "1000000000100.00", r#""counterpartyWalletId":"wallet-9","#, TRANSFER_META),
        ("TransferReversed", "49.99", "149.99", r#""counterpartyWalletId":"wallet-9","#, TRANSFER_META),
        ("OverdraftLimitSet", "0.00", "-5.00", r#""overdraftLimit":500.00,"#, META),
        ("WalletFrozen", "0.00", "149.99", "", META),
        ("WalletUnfrozen", "0.00", "149.99", "", META),
        ("WalletClosed", "0.00", "0.00", "", META),
        ("HoldPlaced", "25.00", "149.99", r#""holdId":"hold-1","expiresAt":"2026-12-01T12:00:00Z","description":"Hotel","#, META),
        ("HoldPlaced", "3.50", "149.99", r#""holdId":"hold-2","#, META),
        ("HoldCaptured", "10.00", "139.99", r#""counterpartyWalletId":"wallet-9","holdId":"hold-1","releasedAmount":15.00,"description":"Hotel","#, META),
        ("HoldCaptured", "3.50", "136.49", r#""holdId":"hold-3","releasedAmount":0.00,"#, META),
        ("HoldCaptureReceived", "10.00", "10.00", r#""counterpartyWalletId":"wallet-7","holdId":"hold-1","description":"Hotel","#, META),
        ("HoldVoided", "3.50", "136.49", r#""holdId":"hold-2","#, META),
        ("HoldExpired", "7.25", "136.49", r#""holdId":"hold-4","#, META),
    ];
    rows.into_iter()
        .map(|(kind, amount, after, fields, metadata)| {
            let json = format!(
                r#"{{"type":"{kind}","schemaVersion":1,"eventId":"0190f5a4-0000-7000-8000-000000000001","walletId":"wallet-123","occurredAt":"2026-11-30T12:00:00Z","amount":{amount},"balanceAfter":{after},{fields}{metadata}}}"#
            );
            (json, amount)
        })
        .collect()
}

#[test]
fn every_stored_event_type_decodes_and_encodes_back_to_the_same_bytes() {
    let stored = stored_events();
    let types: std::collections::BTreeSet<&str> = stored
        .iter()
        .map(|(json, _)| json.split('"').nth(3).expect("a type"))
        .collect();
    assert_eq!(
        types.len(),
        15,
        "one stored JSON of every event type: {types:?}"
    );
    for (json, wire_amount) in stored {
        let event = WalletEvent::from_json(&json).unwrap_or_else(|error| panic!("{json}: {error}"));
        assert_eq!(event.to_json().expect("encode"), json);
        let expected: Decimal = wire_amount.parse().expect("a decimal");
        assert_eq!(event.amount().value(), expected, "{json}");
        assert_eq!(event.amount().value().to_string(), wire_amount, "{json}");
    }
}

#[test]
fn a_wire_amount_its_kind_does_not_carry_is_refused() {
    let stored = stored_events();
    let (frozen, _) = stored
        .iter()
        .find(|(json, _)| json.contains("WalletFrozen"))
        .expect("a freeze");
    let moving_freeze = frozen.replace(r#""amount":0.00"#, r#""amount":1.00"#);
    assert!(matches!(
        WalletEvent::from_json(&moving_freeze),
        Err(EventDecodeError::InvalidField {
            field: "amount",
            ..
        })
    ));
}
