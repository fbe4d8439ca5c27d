//! The SUBSCRIBE side of the shared listen loop ([`crate::notifier::listen`]): the loop
//! reconnects and parses; this only subscribes to the store's channels and yields messages.

use async_trait::async_trait;

use crate::notifier::listen::{Channels, Transport};

/// The SUBSCRIBE transport of the shared listen loop ([`crate::notifier::listen`]).
pub(super) struct RedisTransport(pub(super) redis::Client);

#[async_trait]
impl Transport for RedisTransport {
    type Subscription = redis::aio::PubSubStream;

    async fn subscribe(&self, channels: &Channels) -> Result<Self::Subscription, String> {
        let mut pubsub = self.0.get_async_pubsub().await.map_err(|e| e.to_string())?;
        pubsub
            .subscribe(&channels.all())
            .await
            .map_err(|e| e.to_string())?;
        Ok(pubsub.into_on_message())
    }

    async fn next(messages: &mut Self::Subscription) -> Result<Option<(String, String)>, String> {
        use futures_util::StreamExt;
        Ok(messages.next().await.map(|message| {
            let payload: String = message.get_payload().unwrap_or_default();
            (message.get_channel_name().to_string(), payload)
        }))
    }
}
