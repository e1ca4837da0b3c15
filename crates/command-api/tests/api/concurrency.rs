//! Many clients on one wallet: no spurious errors, an exact balance.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn twenty_clients_hammering_one_wallet_all_succeed() {
    const CLIENTS: usize = 20;
    const OPERATIONS_PER_CLIENT: usize = 10;
    let app = spawn_app().await;
    app.create_wallet("hot", "o", json!(1000)).await;
    app.create_wallet("cold", "o", json!(0)).await;
    let clients = (0..CLIENTS).map(|client| {
        let app = &app;
        async move {
            let mut statuses = Vec::new();
            for operation in 0..OPERATIONS_PER_CLIENT {
                let response = match (client + operation) % 3 {
                    0 => app.credit("hot", json!(1.25)).await,
                    1 => app.debit("hot", json!(0.25)).await,
                    _ => app.transfer("hot", "cold", json!(0.5)).await,
                };
                statuses.push(response.status().as_u16());
            }
            statuses
        }
    });
    let statuses: Vec<u16> = futures::future::join_all(clients)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert!(statuses.iter().all(|status| *status == 201), "{statuses:?}");

    let (credits, debits, transfers) = (0..CLIENTS)
        .flat_map(|client| {
            (0..OPERATIONS_PER_CLIENT).map(move |operation| (client + operation) % 3)
        })
        .fold((0, 0, 0), |(c, d, t), kind| match kind {
            0 => (c + 1, d, t),
            1 => (c, d + 1, t),
            _ => (c, d, t + 1),
        });
    let expected_hot =
        rust_decimal::Decimal::new(100_000 + 125 * credits - 25 * debits - 50 * transfers, 2);
    let expected_cold = rust_decimal::Decimal::new(50 * transfers, 2);
    assert_eq!(app.balance_text("hot").await, expected_hot.to_string());
    assert_eq!(app.balance_text("cold").await, expected_cold.to_string());
    app.stop().await;
}
