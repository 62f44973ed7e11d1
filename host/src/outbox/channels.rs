//! SMS and WeChat: messages handed to the dealer's channel plugin (the `channel` hook of
//! `dealer:platform@0.2.0`, e.g. the first-party Alibaba Cloud SMS plugin), which calls its
//! provider with the host signing for it; the provider's answers are kept with the attempt.
//! A dealer that enabled no channel plugin gets the hook's built-in default, the log, and
//! the attempt says so.

use std::sync::Arc;

use super::Purpose;
use super::delivery::{LogSink, Outgoing, SendError, SendFuture, Sender};
use crate::plugins::dispatch::Plugins;
use crate::plugins::hooks::channel;

/// Sends a channel's messages through each dealer's channel plugin.
pub struct PluginChannel {
    plugins: Arc<Plugins>,
}

impl PluginChannel {
    pub fn new(plugins: Arc<Plugins>) -> PluginChannel {
        PluginChannel { plugins }
    }
}

/// The attempt's answer when the dealer enabled no channel plugin.
pub const NOT_ENABLED: &str = "logged: no channel plugin is enabled for this dealer";

impl Sender for PluginChannel {
    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            let asked = channel::Message {
                channel: message.channel.clone(),
                to: message.to.iter().map(|a| a.address.clone()).collect(),
                template: message.template.clone(),
                params: message.data.clone(),
                purpose: match message.purpose {
                    Purpose::Service => channel::Purpose::Service,
                    Purpose::Marketing => channel::Purpose::Marketing,
                },
            };
            match self.plugins.send_message(message.dealer_id, asked).await {
                Ok(answers) => Ok(answers.join("; ")),
                Err(failure) if failure.not_enabled => {
                    LogSink.send(message).await?;
                    Ok(NOT_ENABLED.to_owned())
                }
                Err(failure) if failure.retryable => Err(SendError::Retryable(failure.message)),
                Err(failure) => Err(SendError::Permanent(failure.message)),
            }
        })
    }
}
