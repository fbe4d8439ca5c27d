//! The SUBSCRIBE side of the shared listen loop ([`crate::notifier::listen`]): the loop
//! reconnects and parses; this only subscribes to the store's channels and yields messages.

use async_trait::async_trait;

use crate::notifier::listen::{Channels, Transport};

/// The SUBSCRIBE transport of the shared listen loop ([`crate::notifier::listen`]): on the
/// server, or on the first cluster node that answers (a PUBLISH reaches every node).
pub(super) struct RedisTransport(pub(super) Vec<redis::Client>);

#[async_trait]
impl Transport for RedisTransport {
    type Subscription = redis::aio::PubSubStream;

    async fn subscribe(&self, channels: &Channels) -> Result<Self::Subscription, String> {
        let mut last = "no Redis node to subscribe on".to_string();
        for client in &self.0 {
            match subscribe(client, channels).await {
                Ok(subscription) => return Ok(subscription),
                Err(err) => last = err.to_string(),
            }
        }
        Err(last)
    }

    async fn next(messages: &mut Self::Subscription) -> Result<Option<(String, String)>, String> {
        use futures_util::StreamExt;
        Ok(messages.next().await.map(|message| {
            let payload: String = message.get_payload().unwrap_or_default();
            (message.get_channel_name().to_string(), payload)
        }))
    }
}

async fn subscribe(
    client: &redis::Client,
    channels: &Channels,
) -> redis::RedisResult<redis::aio::PubSubStream> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(&channels.all()).await?;
    Ok(pubsub.into_on_message())
}
