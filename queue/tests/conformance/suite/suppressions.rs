//! The suppression list and contacts: an entry kept once, pages by address, batched
//! lookups of any length, the latest contact kept, addresses in their normalised form.

use chrono::{DateTime, Duration, Utc};
use drover_queue::suppress::normalise_email;
use drover_queue::testing::Backend;
use drover_queue::*;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

fn entry(email: &str, reason: SuppressionReason) -> Suppression {
    Suppression {
        email: email.into(),
        reason,
        note: None,
        created_at: t0(),
    }
}

fn emails(suppressions: &[Suppression]) -> Vec<String> {
    suppressions.iter().map(|s| s.email.clone()).collect()
}

pub async fn suppressions_are_kept_once_and_paged_by_address(b: &Backend) {
    let store = b.open().await;
    // Stored in an order unlike the address order.
    let mut all: Vec<String> = (0..25)
        .map(|i| format!("user{:02}@example.com", (i * 7) % 25))
        .collect();
    for email in &all {
        assert!(store
            .suppress(&entry(email, SuppressionReason::Bounced))
            .await
            .expect("suppress"));
    }
    all.sort();
    let again = Suppression {
        note: Some("again".into()),
        ..entry("user03@example.com", SuppressionReason::Manual)
    };
    assert!(
        !store.suppress(&again).await.expect("suppress"),
        "an address is suppressed once"
    );
    let kept = store
        .suppressed(&["user03@example.com".to_string()])
        .await
        .expect("lookup");
    assert_eq!(
        kept,
        [entry("user03@example.com", SuppressionReason::Bounced)],
        "the first entry is kept as it was"
    );

    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .suppressions(after.as_deref(), 10)
            .await
            .expect("page");
        assert!(page.len() <= 10);
        let Some(last) = page.last() else { break };
        after = Some(last.email.clone());
        paged.extend(emails(&page));
    }
    assert_eq!(paged, all, "every address once, ascending");
    assert_eq!(
        emails(
            &store
                .suppressions(Some("user10@example.com"), 3)
                .await
                .expect("page")
        ),
        [
            "user11@example.com",
            "user12@example.com",
            "user13@example.com"
        ],
        "strictly after `after`"
    );

    assert!(store
        .unsuppress("user11@example.com")
        .await
        .expect("unsuppress"));
    assert!(!store
        .unsuppress("user11@example.com")
        .await
        .expect("unsuppress"));
    assert_eq!(
        emails(
            &store
                .suppressions(Some("user10@example.com"), 2)
                .await
                .expect("page")
        ),
        ["user12@example.com", "user13@example.com"]
    );
    // Suppressed again after the lift, with the new reason.
    assert!(store
        .suppress(&entry(
            "user11@example.com",
            SuppressionReason::Unsubscribed
        ))
        .await
        .expect("suppress"));
    let back = store
        .suppressed(&["user11@example.com".to_string()])
        .await
        .expect("lookup");
    assert_eq!(back[0].reason, SuppressionReason::Unsubscribed);
}

pub async fn batched_lookups_take_any_number_of_addresses(b: &Backend) {
    let store = b.open().await;
    let asked: Vec<String> = (0..2500)
        .map(|i| format!("lead{i:04}@example.org"))
        .collect();
    let job = JobId::now_v7();
    let mut suppressed = Vec::new();
    let mut contacted = Vec::new();
    for (i, email) in asked.iter().enumerate() {
        if i % 2 == 0 {
            store
                .suppress(&Suppression {
                    note: Some(format!("bounce {i}")),
                    ..entry(email, SuppressionReason::Bounced)
                })
                .await
                .expect("suppress");
            suppressed.push(email.clone());
        }
        if i % 3 == 0 {
            store
                .record_contact(&Contact {
                    email: email.clone(),
                    job_id: job,
                    at: t0() + Duration::seconds(i as i64),
                })
                .await
                .expect("contact");
            contacted.push(email.clone());
        }
    }
    let mut found = emails(&store.suppressed(&asked).await.expect("lookup"));
    found.sort();
    assert_eq!(found, suppressed, "all 1,250 found among 2,500 asked");
    let mut last: Vec<Contact> = store.last_contacts(&asked).await.expect("lookup");
    last.sort_by(|a, b| a.email.cmp(&b.email));
    assert_eq!(
        last.iter().map(|c| c.email.clone()).collect::<Vec<_>>(),
        contacted
    );
    assert!(last.iter().all(|c| c.job_id == job));
    assert_eq!(last[1].at, t0() + Duration::seconds(3));
    assert!(store.suppressed(&[]).await.expect("lookup").is_empty());
    assert!(store.last_contacts(&[]).await.expect("lookup").is_empty());
}

pub async fn contacts_keep_the_latest(b: &Backend) {
    let store = b.open().await;
    let email = "ann@example.com".to_string();
    let (a, b2, c) = (JobId::now_v7(), JobId::now_v7(), JobId::now_v7());
    let contact = |job_id, at| Contact {
        email: email.clone(),
        job_id,
        at,
    };
    let later = t0() + Duration::days(10);
    store
        .record_contact(&contact(a, later))
        .await
        .expect("contact");
    store
        .record_contact(&contact(b2, t0()))
        .await
        .expect("an older contact");
    store
        .record_contact(&contact(b2, later))
        .await
        .expect("as late");
    let last = store
        .last_contacts(std::slice::from_ref(&email))
        .await
        .expect("lookup");
    assert_eq!(
        last,
        [contact(a, later)],
        "an older or as-late contact changes nothing"
    );
    let latest = later + Duration::milliseconds(1);
    store
        .record_contact(&contact(c, latest))
        .await
        .expect("a later contact");
    let last = store
        .last_contacts(&[email.clone(), "nobody@example.com".into()])
        .await
        .expect("lookup");
    assert_eq!(last, [contact(c, latest)]);
}

pub async fn suppressions_take_normalised_addresses(b: &Backend) {
    let store = b.open().await;
    let written = normalise_email("  Ann.Lee@Example.COM ").expect("valid");
    store
        .suppress(&entry(&written, SuppressionReason::Unsubscribed))
        .await
        .expect("suppress");
    let asked = normalise_email("ann.lee@example.com").expect("valid");
    assert_eq!(
        emails(&store.suppressed(&[asked]).await.expect("lookup")),
        ["ann.lee@example.com"]
    );
    // What no store can hold is refused alike, naming the field; a lookup of it finds
    // nothing (it cannot have been stored).
    let nul = "ann\0@example.com".to_string();
    match store
        .suppress(&entry(&nul, SuppressionReason::Manual))
        .await
    {
        Err(StoreError::Invalid(invalid)) => assert_eq!(invalid.field, "email"),
        other => panic!("expected a refusal naming `email`, got {other:?}"),
    }
    assert!(store
        .suppressed(std::slice::from_ref(&nul))
        .await
        .expect("lookup")
        .is_empty());
    assert!(store
        .last_contacts(&[nul])
        .await
        .expect("lookup")
        .is_empty());
}
