//! The LISTEN/NOTIFY transport of the shared listen loop ([`crate::notifier::listen`]).

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPool};

use crate::notifier::listen::{Channels, Transport};

/// Listens on a connection of its own from the store's pool settings.
pub(super) struct PgTransport(pub(super) PgPool);

#[async_trait]
impl Transport for PgTransport {
    type Subscription = PgListener;

    async fn subscribe(&self, channels: &Channels) -> Result<PgListener, String> {
        let mut listener = PgListener::connect_with(&self.0)
            .await
            .map_err(|e| e.to_string())?;
        listener
            .listen_all(channels.all())
            .await
            .map_err(|e| e.to_string())?;
        Ok(listener)
    }

    async fn next(listener: &mut PgListener) -> Result<Option<(String, String)>, String> {
        match listener.try_recv().await {
            Ok(Some(note)) => Ok(Some((
                note.channel().to_string(),
                note.payload().to_string(),
            ))),
            Ok(None) => Ok(None),
            Err(err) => Err(err.to_string()),
        }
    }
}
