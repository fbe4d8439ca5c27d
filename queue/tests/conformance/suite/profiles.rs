//! Profiles, résumés, sealed sessions and the applications ledger: stored, replaced and
//! deleted alike; a posting claimed once; caps per IST day and month that concurrent
//! claims never overshoot; counts given back by `manual` and `failed`; no cookie in the
//! clear anywhere in the storage.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use drover_queue::seal::{Cookies, Keyring, SealError};
use drover_queue::secret::SecretKey;
use drover_queue::testing::Backend;
use drover_queue::*;
use serde_json::json;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("time")
        .with_timezone(&Utc)
}

fn profile(name: &str) -> Profile {
    let mut p: Profile = serde_json::from_value(json!({
        "name": name,
        "email": "Ann@Example.com",
        "links": {"GitHub": "https://github.com/ann"},
        "titles": ["Backend Engineer"],
        "answers": {"Are you authorised to work in India?": "Yes"},
        "caps": {"daily": 3, "monthly": 20},
        "nightly": true,
        "sources": [{"type": "greenhouse", "board": "acme"}],
    }))
    .expect("profile");
    p.validate().expect("valid");
    p
}

fn resume(data: &[u8], at: DateTime<Utc>) -> Resume {
    Resume {
        info: ResumeInfo {
            filename: "ann.pdf".into(),
            content_type: "application/pdf".into(),
            bytes: data.len() as u64,
            uploaded_at: at,
        },
        data: data.to_vec(),
    }
}

pub async fn profiles_resumes_and_sessions_are_stored_replaced_and_deleted(b: &Backend) {
    let store = b.open().await;
    let t0 = at("2026-03-01T10:00:00Z");
    let t1 = t0 + Duration::minutes(5);
    assert!(store.profile("ann").await.expect("read").is_none());
    assert!(store
        .put_profile("ann", &profile("Ann"), t0)
        .await
        .expect("put"));
    assert!(!store
        .put_profile("ann", &profile("Ann Lee"), t1)
        .await
        .expect("replace"));
    let stored = store.profile("ann").await.expect("read").expect("stored");
    assert_eq!(stored.profile, profile("Ann Lee"));
    assert_eq!(
        (stored.created_at, stored.updated_at),
        (t0, t1),
        "the first created_at is kept"
    );
    assert_eq!(stored.user_id, "ann");

    // The résumé: bytes kept exactly (every byte value), replaced whole.
    let bytes: Vec<u8> = b"%PDF-1.7\n".iter().copied().chain(0..=255u8).collect();
    store
        .put_resume("ann", &resume(&bytes, t0))
        .await
        .expect("resume");
    store
        .put_resume("ann", &resume(&bytes[..100], t1))
        .await
        .expect("replace");
    let kept = store
        .resume_file("ann")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(kept, resume(&bytes[..100], t1));
    assert_eq!(
        store.resume_info("ann").await.expect("info"),
        Some(resume(&bytes[..100], t1).info)
    );
    assert!(store.resume_info("bob").await.expect("info").is_none());

    // Sessions: by site, replaced whole, listed without blobs.
    for (site, blob, when) in [
        ("lever", vec![1u8, 0, 2], t0),
        ("greenhouse", vec![3], t0),
        ("lever", vec![4, 5], t1),
    ] {
        store
            .put_session(&SealedSession {
                user_id: "ann".into(),
                site: site.into(),
                blob,
                updated_at: when,
            })
            .await
            .expect("session");
    }
    assert_eq!(
        store.sessions("ann").await.expect("list"),
        [
            SessionInfo {
                site: "greenhouse".into(),
                updated_at: t0
            },
            SessionInfo {
                site: "lever".into(),
                updated_at: t1
            },
        ]
    );
    let lever = store
        .session("ann", "lever")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!((lever.blob, lever.updated_at), (vec![4, 5], t1));
    assert!(store.session("bob", "lever").await.expect("read").is_none());
    assert!(store
        .delete_session("ann", "greenhouse")
        .await
        .expect("delete"));
    assert!(!store
        .delete_session("ann", "greenhouse")
        .await
        .expect("again"));
    assert_eq!(store.sessions("ann").await.expect("list").len(), 1);

    // Deleting the profile takes its résumé and sessions; the ledger stays.
    let job = JobId::now_v7();
    let claim = store
        .claim_application("ann", "gh:1", job, Caps::default(), t0)
        .await
        .expect("claim");
    assert_eq!(claim, Claim::Claimed);
    assert!(store.delete_profile("ann").await.expect("delete"));
    assert!(!store.delete_profile("ann").await.expect("again"));
    assert!(store.profile("ann").await.expect("read").is_none());
    assert!(store.resume_file("ann").await.expect("read").is_none());
    assert!(store.sessions("ann").await.expect("list").is_empty());
    assert!(store
        .application("ann", "gh:1")
        .await
        .expect("ledger")
        .is_some());

    // A profile holding U+0000 is refused alike, naming the field.
    let mut bad = profile("Ann");
    bad.answers.insert("q".into(), "a\u{0}".into());
    match store.put_profile("ann", &bad, t0).await {
        Err(StoreError::Invalid(e)) => assert_eq!(e.field, "profile"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

pub async fn a_posting_is_claimed_once_and_settled_along_its_life(b: &Backend) {
    let store = b.open().await;
    let now = at("2026-03-10T06:00:00Z");
    let (first, second) = (JobId::now_v7(), JobId::now_v7());
    let caps = Caps {
        daily: 5,
        monthly: 10,
    };
    assert_eq!(
        store
            .claim_application("ann", "gh:1", first, caps, now)
            .await
            .expect("claim"),
        Claim::Claimed
    );
    let already = Claim::Already {
        job_id: first,
        outcome: Outcome::Claimed,
        at: now,
    };
    assert_eq!(
        store
            .claim_application("ann", "gh:1", second, caps, now)
            .await
            .expect("again"),
        already,
        "another job finds the first job's claim"
    );
    assert_eq!(
        store
            .claim_application("bob", "gh:1", second, caps, now)
            .await
            .expect("bob"),
        Claim::Claimed,
        "ledgers are per user"
    );
    let counts = |d, m| ApplicationCounts { day: d, month: m };
    assert_eq!(
        store.application_counts("ann", now).await.expect("counts"),
        counts(1, 1)
    );

    // applied keeps the count; an applied posting is never released or re-claimed.
    let later = now + Duration::minutes(1);
    let applied = store
        .settle_application("ann", "gh:1", Outcome::Applied, later)
        .await
        .expect("settle")
        .expect("entry");
    assert_eq!(
        (applied.outcome, applied.counted, applied.settled_at),
        (Outcome::Applied, true, Some(later))
    );
    assert_eq!(
        store
            .settle_application("ann", "gh:1", Outcome::Applied, later + Duration::hours(1))
            .await
            .expect("again"),
        Some(applied.clone()),
        "settling again changes nothing"
    );
    match store
        .settle_application("ann", "gh:1", Outcome::Failed, later)
        .await
    {
        Err(StoreError::Invalid(e)) => assert_eq!(e.field, "outcome"),
        other => panic!("applied cannot become failed: {other:?}"),
    }
    assert!(!store
        .release_application("ann", "gh:1")
        .await
        .expect("release"));
    assert_eq!(
        store.application_counts("ann", now).await.expect("counts"),
        counts(1, 1)
    );

    // manual gives the count back; failed too, and a failed posting can be released.
    for (posting, outcome) in [
        ("gh:2", Outcome::Manual),
        ("gh:3", Outcome::Failed),
        ("gh:4", Outcome::Unknown),
    ] {
        assert_eq!(
            store
                .claim_application("ann", posting, first, caps, now)
                .await
                .expect("claim"),
            Claim::Claimed
        );
        store
            .settle_application("ann", posting, outcome, later)
            .await
            .expect("settle");
    }
    assert_eq!(
        store.application_counts("ann", now).await.expect("counts"),
        counts(2, 2),
        "applied and unknown count; manual and failed do not"
    );
    assert!(!store
        .release_application("ann", "gh:4")
        .await
        .expect("unknown stays"));
    assert!(!store
        .release_application("ann", "gh:2")
        .await
        .expect("manual stays"));
    assert_eq!(
        store
            .claim_application("ann", "gh:3", second, caps, now)
            .await
            .expect("failed"),
        Claim::Already {
            job_id: first,
            outcome: Outcome::Failed,
            at: now
        },
        "a failed entry blocks until released"
    );
    assert!(store
        .release_application("ann", "gh:3")
        .await
        .expect("release"));
    assert!(!store
        .release_application("ann", "gh:3")
        .await
        .expect("gone"));
    assert_eq!(
        store
            .claim_application("ann", "gh:3", second, caps, later)
            .await
            .expect("again"),
        Claim::Claimed,
        "a released posting may be tried again"
    );
    // unknown resolves to applied once found out; nothing returns to claimed.
    let resolved = store
        .settle_application("ann", "gh:4", Outcome::Applied, later)
        .await
        .expect("resolve")
        .expect("entry");
    assert!(resolved.counted);
    assert!(store
        .settle_application("ann", "gh:3", Outcome::Claimed, later)
        .await
        .is_err());
    assert_eq!(
        store
            .settle_application("ann", "nope", Outcome::Applied, later)
            .await
            .expect("none"),
        None
    );

    // Keys are checked before the store is touched.
    for (user, posting, field) in [
        ("a b", "p", "user_id"),
        ("ann", "", "posting_key"),
        ("ann", "p\n", "posting_key"),
    ] {
        match store
            .claim_application(user, posting, first, caps, now)
            .await
        {
            Err(StoreError::Invalid(e)) => assert_eq!(e.field, field),
            other => panic!("{user:?} {posting:?}: {other:?}"),
        }
    }
}

pub async fn caps_close_the_ist_day_and_month(b: &Backend) {
    let store = b.open().await;
    let job = JobId::now_v7();
    let caps = Caps {
        daily: 2,
        monthly: 3,
    };
    // 2026-03-10 18:00 UTC is 23:30 IST on the 10th; 18:30 UTC is midnight IST.
    let late = at("2026-03-10T18:00:00Z");
    let claim = |posting: &'static str, now| {
        let store = store.clone();
        async move {
            store
                .claim_application("ann", posting, job, caps, now)
                .await
                .expect("claim")
        }
    };
    assert_eq!(claim("p1", late).await, Claim::Claimed);
    assert_eq!(claim("p2", late).await, Claim::Claimed);
    assert_eq!(
        claim("p3", late).await,
        Claim::Capped {
            which: CapKind::Daily,
            until: at("2026-03-10T18:30:00Z")
        }
    );
    assert!(
        store
            .application("ann", "p3")
            .await
            .expect("read")
            .is_none(),
        "a capped claim stores nothing"
    );
    let next_day = at("2026-03-10T18:30:00Z");
    assert_eq!(
        claim("p3", next_day).await,
        Claim::Claimed,
        "the next IST day reopens"
    );
    assert_eq!(
        claim("p4", next_day).await,
        Claim::Capped {
            which: CapKind::Monthly,
            until: at("2026-03-31T18:30:00Z")
        }
    );
    // A tier-2 posting gives its count back: room for one more.
    store
        .settle_application("ann", "p3", Outcome::Manual, next_day)
        .await
        .expect("manual");
    assert_eq!(claim("p4", next_day).await, Claim::Claimed);
    assert_eq!(
        claim("p5", at("2026-03-31T18:29:59Z")).await,
        Claim::Capped {
            which: CapKind::Monthly,
            until: at("2026-03-31T18:30:00Z")
        }
    );
    assert_eq!(
        claim("p5", at("2026-03-31T18:30:00Z")).await,
        Claim::Claimed,
        "April in IST"
    );
    assert_eq!(
        store
            .application_counts("ann", at("2026-03-31T18:30:00Z"))
            .await
            .expect("counts"),
        ApplicationCounts { day: 1, month: 1 }
    );
    assert_eq!(
        store
            .application_counts("ann", next_day)
            .await
            .expect("counts"),
        ApplicationCounts { day: 1, month: 3 }
    );
}

pub async fn concurrent_claims_never_exceed_the_caps(b: &Backend) {
    // Two stores on one storage, as two worker processes have.
    let store = b.open().await;
    let other = b.open().await;
    let now = at("2026-05-05T05:00:00Z");
    let caps = Caps {
        daily: 7,
        monthly: 9,
    };
    // 40 claims of distinct postings by 40 jobs of one user, all at once.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store: Arc<dyn Store> = if i % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            store
                .claim_application("ann", &format!("p{i:02}"), JobId::now_v7(), caps, now)
                .await
                .expect("claim")
        }));
    }
    let mut claimed = 0;
    for task in tasks {
        match task.await.expect("join") {
            Claim::Claimed => claimed += 1,
            Claim::Capped {
                which: CapKind::Daily,
                ..
            } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(claimed, 7, "exactly the daily cap");
    assert_eq!(
        store.application_counts("ann", now).await.expect("counts"),
        ApplicationCounts { day: 7, month: 7 }
    );
    // 20 jobs claiming one posting at once: one wins, every other sees its claim.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store: Arc<dyn Store> = if i % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        let job = JobId::now_v7();
        tasks.push(tokio::spawn(async move {
            let claim = store
                .claim_application("bob", "shared", job, caps, now)
                .await
                .expect("claim");
            (job, claim)
        }));
    }
    let mut winners = Vec::new();
    let mut seen = Vec::new();
    for task in tasks {
        match task.await.expect("join") {
            (job, Claim::Claimed) => winners.push(job),
            (_, Claim::Already { job_id, .. }) => seen.push(job_id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "one claim wins");
    assert!(
        seen.iter().all(|j| *j == winners[0]),
        "the rest see the winner"
    );
}

pub async fn the_ledger_pages_by_posting_key(b: &Backend) {
    let store = b.open().await;
    let now = at("2026-05-05T05:00:00Z");
    let caps = Caps {
        daily: 100,
        monthly: 100,
    };
    let mut keys: Vec<String> = (0..25).map(|i| format!("k{:02}", (i * 7) % 25)).collect();
    for key in &keys {
        store
            .claim_application("ann", key, JobId::now_v7(), caps, now)
            .await
            .expect("claim");
    }
    store
        .claim_application("bob", "k00", JobId::now_v7(), caps, now)
        .await
        .expect("claim");
    keys.sort();
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .applications("ann", after.as_deref(), 10)
            .await
            .expect("page");
        assert!(page.len() <= 10);
        let Some(last) = page.last() else { break };
        after = Some(last.posting_key.clone());
        assert!(page
            .iter()
            .all(|a| a.user_id == "ann" && a.outcome == Outcome::Claimed && a.counted));
        paged.extend(page.into_iter().map(|a| a.posting_key));
    }
    assert_eq!(paged, keys);
    assert!(store
        .applications("nobody", None, 10)
        .await
        .expect("empty")
        .is_empty());
}

pub async fn stored_sessions_hold_no_plaintext_cookie(b: &Backend) {
    let store = b.open().await;
    let secret = "sEcReT-cookie-VALUE-8f3a9c";
    let cookies = Cookies::from_value(json!([
        {"name": "session_id", "value": secret, "domain": ".lever.co", "httpOnly": true},
    ]))
    .expect("cookies");
    let ring = Keyring::new(&SecretKey::new([7; 32]), &[]);
    let blob = ring.seal_cookies("ann", "lever", &cookies).expect("seal");
    store
        .put_session(&SealedSession {
            user_id: "ann".into(),
            site: "lever".into(),
            blob,
            updated_at: Utc::now(),
        })
        .await
        .expect("store");
    let raw = b.raw_storage().await;
    assert!(!raw.is_empty());
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    let needles: [&[u8]; 3] = [secret.as_bytes(), hex.as_bytes(), b"session_id"];
    for needle in needles {
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle),
            "{}: the storage holds {:?}",
            b.name(),
            String::from_utf8_lossy(needle)
        );
    }
    // Read back, it opens under the key, for its user and site only.
    let stored = store
        .session("ann", "lever")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        ring.open_cookies("ann", "lever", &stored.blob)
            .expect("open"),
        cookies
    );
    assert_eq!(
        ring.open_cookies("bob", "lever", &stored.blob),
        Err(SealError::DoesNotAuthenticate)
    );
    let other = Keyring::new(&SecretKey::new([8; 32]), &[]);
    let err = other
        .open_cookies("ann", "lever", &stored.blob)
        .expect_err("another key");
    assert!(err.to_string().contains("another key (id"), "{err}");
    let mut tampered = stored.blob.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x80;
    assert_eq!(
        ring.open_cookies("ann", "lever", &tampered),
        Err(SealError::DoesNotAuthenticate)
    );
}
